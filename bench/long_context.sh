#!/bin/sh
# Decode at long contexts (issue 17): `dsv3 bench --context N` for each N,
# FP8 latent cache, batch 1, printing tokens/s and the fraction of the
# roofline that counts the weights plus the cache rows each step reads, and
# the fraction of the bound that also counts flops at the FMA peak (absorbed
# attention costs 2 H (2 rc + dr) flops per cache row: compute-bound at long
# contexts).
# The model's max_position_embeddings must exceed the largest N (bench-moe
# as made by bench/make_bench_model.sh allows 16384: give a copy whose
# config.json says 163840 with rope_scaling.factor 40, DeepSeek-V3's own).
# Usage: bench/long_context.sh MODEL_DIR [THREADS] [CONTEXTS...]
set -eu
model=$1; threads=${2:-2}
shift $(( $# >= 2 ? 2 : 1 ))
contexts=${*:-1024 8192 32768 131072}
dsv3=${DSV3:-build/dsv3}
printf "%8s  %8s  %14s  %9s  %11s  %9s  %10s  %8s\n" context "tok/s" "weights MB/tok" "kv MB/tok" "of roofline" \
  "GFLOP/tok" "flop bound" "of bound"
for n in $contexts; do
  "$dsv3" -t "$threads" bench -m "$model" --kv fp8 -p 16 -n 16 -b 1 --reps 2 --context "$n" --json 2>/dev/null |
    python3 -c '
import json, sys
r = json.load(sys.stdin); d = r["decode"][0]
print("%8d  %8.2f  %14.1f  %9.2f  %10.1f%%  %9.2f  %10.1f  %7.1f%%   (read %.1f GB/s, FMA peak %.0f GFLOP/s, peak RSS %.2f GB)"
      % (d["context"], d["tokens_per_s"], d["weight_bytes_per_token"] / 1e6, d["kv_bytes_per_token"] / 1e6,
         100 * d["fraction_of_roofline"], d["flops_per_token"] / 1e9, d["flop_bound_tokens_per_s"],
         100 * d["fraction_of_bound"], r["membw_gb_per_s"], r["fma_peak_gflop_per_s"], r["peak_rss_bytes"] / 1e9))'
done
