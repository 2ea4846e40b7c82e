#!/usr/bin/env bash
# Runs `dsv3 train` several times on the same data, seed and steps, changing
# one switch, and prints a markdown table of the results (docs/training.md).
#   scripts/train-compare.sh precision DATA_DIR MODEL_CONFIG OUT_DIR [dsv3 train flags...]
#       bf16 vs fp8: final validation loss of each and their relative difference
#   scripts/train-compare.sh balance DATA_DIR MODEL_CONFIG OUT_DIR [dsv3 train flags...]
#       aux-free vs aux-loss vs none: validation loss and MaxVio per MoE layer
# Each run writes OUT_DIR/<variant>/ (checkpoint, train_log.jsonl with the
# loss curves) and OUT_DIR/<variant>.out (the progress lines); the table ends
# with the validation curves (scripts/train-curves.sh). DSV3 selects the binary.
set -euo pipefail
if [ $# -lt 4 ]; then
  sed -n '2,10p' "$0" >&2
  exit 2
fi
what=$1 data=$2 config=$3 out=$4
shift 4
dsv3=${DSV3:-$(dirname "$0")/../build/dsv3}
case "$what" in
  precision) flag=--precision; variants=(bf16 fp8) ;;
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
  a=$(final bf16 val_loss) b=$(final fp8 val_loss)
  echo "| precision | final validation loss |"
  echo "|---|---|"
  echo "| bf16 | $a |"
  echo "| fp8 | $b |"
  awk -v a="$a" -v b="$b" 'BEGIN { printf "\nrelative difference (fp8 - bf16) / bf16: %+.3f%%\n", 100 * (b - a) / a }'
else
  echo "| balancing | validation loss | MaxVio (worst layer) | MaxVio per MoE layer |"
  echo "|---|---|---|---|"
  for v in "${variants[@]}"; do
    per=$(grep '^eval step' "$out/$v.out" | tail -1 | sed -E 's/.*max_vio //')
    echo "| $v | $(final "$v" val_loss) | $(final "$v" max_vio) | $per |"
  done
fi
echo
runs=()
for v in "${variants[@]}"; do runs+=("$out/$v"); done
"$(dirname "$0")/train-curves.sh" "${runs[@]}"
