#!/usr/bin/env bash
# Prints the validation curves of training runs as one markdown table:
#   scripts/train-curves.sh [--key val_loss] RUN_DIR...
# Each RUN_DIR holds the train_log.jsonl `dsv3 train` writes; the columns are
# the runs (named by their directory), the rows the evaluation steps, and the
# cells the chosen key of the evaluation lines (val_loss by default).
set -euo pipefail
key=val_loss
if [ "${1:-}" = --key ]; then key=$2; shift 2; fi
if [ $# -lt 1 ]; then
  sed -n '2,6p' "$0" >&2
  exit 2
fi
for run in "$@"; do
  log="$run/train_log.jsonl"
  [ -f "$log" ] || { echo "train-curves.sh: $log not found" >&2; exit 1; }
  grep "\"$key\"" "$log" | sed -E "s/.*\"step\":([0-9]+).*/\1/" > /tmp/train-curves.$$.steps
  grep "\"$key\"" "$log" | sed -E "s/.*\"$key\":([-0-9.eE+]+).*/\1/" > /tmp/train-curves.$$.values
  paste -d' ' /tmp/train-curves.$$.steps /tmp/train-curves.$$.values | sed "s|^|$(basename "$run") |"
done | awk -v key="$key" '
  { if (!($1 in seen)) { seen[$1] = 1; runs[++nr] = $1 } if (!($2 in sseen)) { sseen[$2] = 1; steps[++ns] = $2 }
    v[$1, $2] = $3 }
  END {
    n = ns
    for (i = 2; i <= n; ++i)  # insertion sort (mawk has no asort)
      for (j = i; j > 1 && steps[j] + 0 < steps[j - 1] + 0; --j) { t = steps[j]; steps[j] = steps[j - 1]; steps[j - 1] = t }
    printf "| step |"; for (r = 1; r <= nr; ++r) printf " %s %s |", runs[r], key; printf "\n|---|"
    for (r = 1; r <= nr; ++r) printf "---|"; printf "\n"
    for (i = 1; i <= n; ++i) {
      printf "| %d |", steps[i]
      for (r = 1; r <= nr; ++r) printf " %s |", ((runs[r], steps[i]) in v) ? sprintf("%.4f", v[runs[r], steps[i]]) : ""
      printf "\n"
    }
  }'
rm -f /tmp/train-curves.$$.steps /tmp/train-curves.$$.values
