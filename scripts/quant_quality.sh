#!/usr/bin/env bash
# The quantization quality table of docs/quantization.md ("Quality: perplexity and
# KL divergence") for any checkpoint: a BF16 base, then for each GGUF type its file
# size, mean KL(base || type), top-1 agreement and perplexity change on one text.
#
#   scripts/quant_quality.sh [TYPE ...]        (default: q8_0 q6_k q5_k_m q4_k_m q4_0 q3_k_m q2_k)
#
# Environment (defaults: the bench-moe table of docs/quantization.md):
#   DSV3      dsv3 binary (default build/dsv3; copy it elsewhere if the build may change)
#   MODEL     FP8 or BF16 safetensors checkpoint with its tokenizer
#             (default /work/bench-models/bench-moe-fp8-tok)
#   TEXT      text file (default: tests/data/brown-validation-excerpt.txt cut at the
#             last sentence end before byte 6000, written to $WORK/text.txt)
#   CONTEXT   tokens per window (default 512)
#   THREADS   worker threads (default 2)
#   WORK      scratch directory (default /tmp/qq): bf16/ (~2x the FP8 size), base.lp
#             (4 x vocab bytes per token), one GGUF at a time, deleted after measuring
#   KEEP_BASE=1 reuse an existing $WORK/bf16 and $WORK/base.lp
#
# Prints one markdown table row per type:
#   | type | GGUF size | perplexity | change | mean KL | top-1 agree |
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
DSV3=${DSV3:-$root/build/dsv3}
MODEL=${MODEL:-/work/bench-models/bench-moe-fp8-tok}
CONTEXT=${CONTEXT:-512}
THREADS=${THREADS:-2}
WORK=${WORK:-/tmp/qq}
types=("$@")
[ ${#types[@]} -gt 0 ] || types=(q8_0 q6_k q5_k_m q4_k_m q4_0 q3_k_m q2_k)

mkdir -p "$WORK"
if [ -z "${TEXT:-}" ]; then
  TEXT=$WORK/text.txt
  python3 - "$root/tests/data/brown-validation-excerpt.txt" "$TEXT" <<'EOF'
import sys
t = open(sys.argv[1], encoding="utf-8").read()
i = t.rfind(". ", 0, 6000)
open(sys.argv[2], "w", encoding="utf-8").write(t[:i + 1] + "\n")
EOF
fi

ppl() {  # MODEL_FILE EXTRA_ARGS... -> the perplexity summary line
  local m=$1; shift
  "$DSV3" -t "$THREADS" perplexity -q -m "$m" --tokenizer "$MODEL" -f "$TEXT" \
    -c "$CONTEXT" "$@" | grep '^perplexity='
}
field() { sed -n "s/.*[ ^]$1=\([^ ]*\).*/\1/p; s/^$1=\([^ ]*\).*/\1/p" <<<"$2" | head -1; }

if [ "${KEEP_BASE:-0}" != 1 ] || [ ! -f "$WORK/base.lp" ]; then
  rm -rf "$WORK/bf16" "$WORK/base.lp"
  "$DSV3" -t "$THREADS" convert -q --to bf16 "$MODEL" "$WORK/bf16" >&2
  line=$(ppl "$WORK/bf16" --save-logprobs "$WORK/base.lp")
  echo "base: $line" >&2
fi
bf16_mb=$( [ -d "$WORK/bf16" ] && du -sbL "$WORK/bf16" | awk '{if ($1 >= 1e9) printf "%.2f GB", $1 / 1e9; else printf "%.1f MB", $1 / 1e6}' || echo "?")

echo "| type | GGUF size | perplexity | change | mean KL | top-1 agree |"
echo "|---|---:|---:|---:|---:|---:|"
first=1
for t in "${types[@]}"; do
  g=$WORK/$t.gguf; rm -f "$g"
  "$DSV3" -t "$THREADS" convert -q --to gguf --type "$t" "$MODEL" "$g" >&2
  size=$(stat -c %s "$g")
  line=$(ppl "$g" --kl-base "$WORK/base.lp")
  rm -f "$g"
  p=$(field perplexity "$line"); b=$(field base_perplexity "$line")
  kl=$(field kl_mean "$line"); top=$(field top1_agree "$line")
  if [ $first = 1 ]; then
    printf '| BF16 (base) | %s | %s | | 0 | 100%% |\n' "$bf16_mb" "$b"
    first=0
  fi
  awk -v t="$t" -v s="$size" -v p="$p" -v b="$b" -v kl="$kl" -v top="$top" 'BEGIN {
    size = s >= 1e9 ? sprintf("%.2f GB", s / 1e9) : sprintf("%.1f MB", s / 1e6)
    printf "| %s | %s | %s | %+.3f%% | %s | %.1f%% |\n",
      toupper(t), size, p, (p / b - 1) * 100, kl, top * 100 }'
done
