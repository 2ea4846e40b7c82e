#!/bin/sh
# Long-context logits (issue 17) on a one-layer checkpoint with DeepSeek-V3's
# YaRN (factor 40 over 4096 positions, rope dim 32 here, cos/sin mscale != 1)
# made by `dsv3 init`: T positions prefilled in chunks of 512 with the last 3
# decoded one at a time, checked against an independent float64 forward at
# positions spread over the sequence; the one-piece prefill gives the same
# bits; all-prefill vs the decoded tail within 1e-5; the FP8 cache within its
# bound. Usage: DSV3 REFERENCE COMPARE SRC_DIR WORK_DIR T
set -eu
dsv3=$1 ref=$2 cmp_tool=$3 src=$4 work=$5 T=$6
rm -rf "$work" && mkdir -p "$work"
"$dsv3" init --config "$src/configs/long_context_tiny.json" --out "$work/model" --dtype bf16 --seed 7 --std 0.08 \
  >/dev/null 2>&1
python3 "$src/mpi_make_tokens.py" 1 "$T" 384 "$work/tokens.safetensors"
decode_from=$((T - 3))
run() {  # OUT FLAGS...
  out=$1; shift
  timer=""
  [ -x /usr/bin/time ] && timer='/usr/bin/time -f "  %e s, peak RSS %M KB"'
  eval $timer '"$dsv3"' -t 2 logits -m "$work/model" --input "$work/tokens.safetensors" \
    --output '"$work/$out"' '"$@"' 2>&1 | grep -v '^wrote' || true
  [ -f "$work/$out" ]
}
echo "f32 cache, chunked prefill of $decode_from positions, then 3 decode steps:"
run chunked.safetensors --prefill-chunk 512 --prefill "$decode_from"
positions="0 1000 $((T / 2)) $((T / 5 * 4)) $((T - 5)) $((T - 4)) $((T - 2)) $((T - 1))"
"$ref" "$work/model" "$work/tokens.safetensors" "$work/chunked.safetensors" 1e-3 $positions
echo "one-piece prefill (same positions decoded):"
run onepiece.safetensors --prefill-chunk "$T" --prefill "$decode_from"
cmp "$work/chunked.safetensors" "$work/onepiece.safetensors"
echo "  chunked == one piece, bit for bit"
echo "all positions prefilled vs the decoded tail:"
run prefilled.safetensors --prefill-chunk 512
"$cmp_tool" "$work/chunked.safetensors" "$work/prefilled.safetensors" logits 1e-5
echo "fp8 cache, chunked prefill:"
run fp8.safetensors --prefill-chunk 512 --prefill "$decode_from" --kv-cache fp8
"$ref" "$work/model" "$work/tokens.safetensors" "$work/fp8.safetensors" 3e-2 $positions
rm -rf "$work"
