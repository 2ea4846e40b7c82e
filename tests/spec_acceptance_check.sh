#!/bin/sh
# Draft acceptance (all draft positions) of `dsv3 run --spec mtp` on the bundled model over
# PROMPTS prompts of 10 words taken every 150 words from a held-out text;
# fails when it is below MIN_PERCENT (the shipped MTP layer was refitted to
# the model; a regression to an unfitted or mismatched layer shows here).
#   spec_acceptance_check.sh DSV3 TEXT MIN_PERCENT PROMPTS [dsv3 run flags...]
set -eu
dsv3=$1 text=$2 min=$3 prompts=$4
shift 4
words=$(tr -s '[:space:]' ' ' < "$text")
accepted=0 drafted=0 i=0
while [ "$i" -lt "$prompts" ]; do
  start=$((i * 150 + 1))
  prompt=$(echo "$words" | cut -d' ' -f"$start-$((start + 9))")
  line=$("$dsv3" run -t 1 --prompt "$prompt" -n 48 --temperature 0 --spec mtp "$@" 2>&1 >/dev/null |
         grep -o '[0-9]*/[0-9]* drafts accepted')
  a=${line%%/*} rest=${line#*/}
  accepted=$((accepted + a)) drafted=$((drafted + ${rest%% *}))
  i=$((i + 1))
done
percent=$((100 * accepted / drafted))
echo "drafts accepted: $accepted/$drafted = $percent% (minimum $min%)"
[ "$percent" -ge "$min" ]
