#!/usr/bin/env bash
# Data for fitting a model's MTP layer to the model itself (docs/speculative.md):
# the model's own continuations of prompts from the Brown training documents
# (never the held-out ones: prepare-data's rule, every 20th file), half greedy
# and half sampled at temperature 0.8, PER_DOC prompts of 24 words per document,
# N tokens each, written as text next to the training documents themselves,
# then tokenized with the model's tokenizer.
#   scripts/mtp-distill-data.sh TEXT_DIR OUT_DIR [MODEL_DIR] [PER_DOC] [N]
#   -> OUT_DIR/{gen,data}; train with
#   dsv3 train --init-from MODEL_DIR --trainable mtp --mtp-targets main --data OUT_DIR/data ...
set -euo pipefail
if [ $# -lt 2 ] || [ $# -gt 5 ]; then
  sed -n '2,10p' "$0" >&2
  exit 2
fi
here="$(cd "$(dirname "$0")" && pwd)"
text=$1 out=$2
model=${3:-$here/../models/brown-10m}
per_doc=${4:-4}
n=${5:-192}
dsv3=${DSV3:-$here/../build/dsv3}
files=("$text"/*.txt)
[ ${#files[@]} -ge 20 ] || { echo "mtp-distill-data.sh: $text holds fewer than 20 .txt files" >&2; exit 1; }
mkdir -p "$out/gen"
inputs=()
done_docs=0
for i in "${!files[@]}"; do
  [ $((i % 20)) -ne 19 ] || continue
  f=${files[$i]}
  inputs+=("$f")
  read -r -a words <<<"$(tr -s '[:space:]' ' ' < "$f")"
  for ((j = 0; j < per_doc; j++)); do
    start=$(( (j * ${#words[@]}) / per_doc ))
    prompt="${words[*]:$start:24}"
    sampling=()
    [ $((j % 2)) -eq 0 ] || sampling=(--temperature 0.8 --seed "$((i * 100 + j))")
    g="$out/gen/$(basename "$f" .txt)-$j.txt"
    { printf '%s' "$prompt"; "$dsv3" -t 1 run -q -m "$model" -n "$n" "${sampling[@]}" --prompt "$prompt"; } > "$g"
    inputs+=("$g")
  done
  done_docs=$((done_docs + 1))
  [ $((done_docs % 50)) -ne 0 ] || echo "mtp-distill-data.sh: $done_docs documents" >&2
done
"$dsv3" prepare-data --tokenizer "$model" --out "$out/data" "${inputs[@]}"
