#!/usr/bin/env bash
# Constrained decoding's mask cost as a fraction of a bench-moe decode step,
# both measured in this one run on this machine (docs/performance.md,
# "Constrained decoding: mask cost"):
#   1. a batch-1 decode step of bench-moe (dsv3 bench, head FP8, best of 3)
#   2. build/bench/mask_cost_bench: per-token Apply + Accept along fixed
#      document traces at DeepSeek-V3's vocabulary, cold and warm
#   3. the decode step again (the machine is shared: the faster of the two
#      is the step the fractions use; both are printed)
# Usage: bench/mask_cost.sh [MODEL_DIR] [OUT_DIR]
#   MODEL_DIR  bench-moe FP8 checkpoint (default /work/bench-models/bench-moe-fp8;
#              make it with: build/dsv3 init --config bench/bench-moe.json --out DIR)
#   OUT_DIR    where the raw JSON goes (default a new temporary directory)
# Environment: DSV3_BUILD (default build), THREADS (decode threads, default 2),
# COLD_ITERATIONS (default 5).
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:-/work/bench-models/bench-moe-fp8}
out=${2:-$(mktemp -d /tmp/mask_cost.XXXXXX)}
build=${DSV3_BUILD:-build}
threads=${THREADS:-2}
mkdir -p "$out"
if [ ! -f "$model/config.json" ]; then
  echo "mask_cost: no checkpoint at $model; make it with" >&2
  echo "  $build/dsv3 init --config bench/bench-moe.json --out $model" >&2
  exit 1
fi

decode() {  # $1: output file
  "$build/dsv3" -t "$threads" bench --model "$model" --head fp8 -p 64 -n 64 -b 1 --reps 3 --json >"$1"
}

echo "mask_cost: $(date -u +%FT%TZ), $(uptime | sed 's/.*load/load/')" | tee "$out/when.txt"
decode "$out/decode_before.json"
"$build/bench/mask_cost_bench" --benchmark_min_time=0.5 --cold_iterations="${COLD_ITERATIONS:-5}" \
  --benchmark_format=json --benchmark_out="$out/mask.json" --benchmark_out_format=json >/dev/null
decode "$out/decode_after.json"
echo "mask_cost: done $(date -u +%FT%TZ), $(uptime | sed 's/.*load/load/')" | tee -a "$out/when.txt"

python3 - "$out" <<'EOF'
import json, os, sys
out = sys.argv[1]
steps = []
for name in ("decode_before.json", "decode_after.json"):
    d = json.load(open(os.path.join(out, name)))
    steps.append(1000.0 / d["decode_tokens_per_s"]["1"])
step = min(steps)
print("decode step, bench-moe batch 1 (head fp8): %.2f ms before, %.2f ms after; using %.2f ms" % (*steps, step))
print("%-44s %12s %12s %10s %s" % ("benchmark", "ms/token", "max ms", "of a step", "notes"))
for b in json.load(open(os.path.join(out, "mask.json")))["benchmarks"]:
    name = b["name"].split("/iterations")[0].replace("/manual_time", "")
    if "us_per_token" in b:
        ms, mx = b["us_per_token"] / 1000, b["max_us"] / 1000
        notes = "%d tokens" % b["tokens"]
        if "distinct_states" in b:
            notes += ", %d distinct states" % b["distinct_states"]
        print("%-44s %12.3f %12.2f %9.3fx %s" % (name, ms, mx, ms / step, notes))
    elif name.startswith("BM_Mask"):
        ms = b["real_time"] * {"us": 1e-3, "ms": 1.0, "ns": 1e-6}[b["time_unit"]]
        print("%-44s %12.3f %12s %9.3fx %d tokens allowed" % (name + " (one mask)", ms, "", ms / step, b["allowed"]))
    else:
        ms = b["real_time"] * {"us": 1e-3, "ms": 1.0, "ns": 1e-6}[b["time_unit"]]
        print("%-44s %12.1f ms once per grammar; trie %d nodes" % (name, ms, b.get("trie_nodes", 0)))
print("raw results:", out)
EOF
