#!/usr/bin/env bash
# Runs `dsv3 train` several times on the same data, seed and steps, changing
# one switch, and prints a markdown table of the results (docs/training.md).
#   scripts/train-compare.sh precision DATA_DIR MODEL_CONFIG OUT_DIR [dsv3 train flags...]
#       fp32, bf16 and fp8: final validation loss of each and the relative
#       difference of fp8 against bf16 (and of bf16 against fp32)
#   scripts/train-compare.sh balance DATA_DIR MODEL_CONFIG OUT_DIR [dsv3 train flags...]
#       aux-free vs aux-loss vs none: validation loss and MaxVio per MoE layer
# Each run writes OUT_DIR/<variant>/ (checkpoint, train_log.jsonl with the
# loss curves) and OUT_DIR/<variant>.out (the progress lines); the table ends
# with the validation curves (scripts/train-curves.sh). DSV3 selects the binary.
set -euo pipefail
if [ $# -lt 4 ]; then
  sed -n '2,11p' "$0" >&2
  exit 2
fi
what=$1 data=$2 config=$3 out=$4
shift 4
dsv3=${DSV3:-$(dirname "$0")/../build/dsv3}
case "$what" in
  precision) flag=--precision; variants=(fp32 bf16 fp8) ;;
  balance) flag=--balance; variants=(aux-free aux-loss none) ;;
  *) echo "train-compare.sh: the first argument must be precision or balance" >&2; exit 2 ;;
esac
mkdir -p "$out"
for v in "${variants[@]}"; do
  rm -rf "${out:?}/$v"
  echo "== $flag $v" >&2
  "$dsv3" train --model-config "$config" --data "$data" --out "$out/$v" "$@" "$flag" "$v" | tee "$out/$v.out" >&2
done
final() { grep '^final ' "$out/$1.out" | sed -E "s/.* $2=([^ ]+).*/\1/"; }
if [ "$what" = precision ]; then
  f=$(final fp32 val_loss) a=$(final bf16 val_loss) b=$(final fp8 val_loss)
  echo "| precision | final validation loss | train loss (last interval) |"
  echo "|---|---|---|"
  for v in fp32 bf16 fp8; do echo "| $v | $(final $v val_loss) | $(final $v train_loss) |"; done
  awk -v f="$f" -v a="$a" -v b="$b" 'BEGIN {
    printf "\nrelative difference of the final validation loss: fp8 vs bf16 %+.3f%%, bf16 vs fp32 %+.3f%%\n",
           100 * (b - a) / a, 100 * (a - f) / f }'
else
  echo "| balancing | validation loss | MaxVio (worst layer) | MaxVio per MoE layer |"
  echo "|---|---|---|---|"
  for v in "${variants[@]}"; do
    per=$(grep '^eval step' "$out/$v.out" | tail -1 | sed -E 's/.*max_vio //; s/  min_load.*//')
    echo "| $v | $(final "$v" val_loss) | $(final "$v" max_vio) | $per |"
  done
fi
echo
runs=()
for v in "${variants[@]}"; do runs+=("$out/$v"); done
"$(dirname "$0")/train-curves.sh" "${runs[@]}"
