#!/usr/bin/env bash
# First-draft acceptance of MTP speculative decoding on held-out text: for
# each held-out Brown document (prepare-data's rule: every 20th file of
# TEXT_DIR), the first WORDS words as the prompt, N greedy tokens with
# `dsv3 run --spec mtp --draft-tokens K`; prints the summed drafts, accepted
# drafts, acceptance and tokens per main forward.
#   scripts/spec-acceptance.sh TEXT_DIR [MODEL_DIR] [K] [N] [WORDS]
set -euo pipefail
if [ $# -lt 1 ] || [ $# -gt 5 ]; then
  sed -n '2,9p' "$0" >&2
  exit 2
fi
here="$(cd "$(dirname "$0")" && pwd)"
text=$1
model=${2:-$here/../models/brown-10m}
k=${3:-1}
n=${4:-64}
words=${5:-32}
dsv3=${DSV3:-$here/../build/dsv3}
files=("$text"/*.txt)
[ ${#files[@]} -ge 20 ] || { echo "spec-acceptance.sh: $text holds fewer than 20 .txt files" >&2; exit 1; }
rounds=0 drafted=0 accepted=0 prompts=0
for i in "${!files[@]}"; do
  [ $((i % 20)) -eq 19 ] || continue
  prompt=$(tr -s '[:space:]' ' ' < "${files[$i]}" | cut -d' ' -f1-"$words")
  line=$("$dsv3" -t 1 run -m "$model" --spec mtp --draft-tokens "$k" ${SPEC_FLAGS:-} -n "$n" --prompt "$prompt" 2>&1 >/dev/null |
         grep -o '[0-9]* rounds, [0-9]*/[0-9]* drafts accepted')
  read -r r a d <<<"$(echo "$line" | sed -E 's#([0-9]+) rounds, ([0-9]+)/([0-9]+).*#\1 \2 \3#')"
  rounds=$((rounds + r)) accepted=$((accepted + a)) drafted=$((drafted + d)) prompts=$((prompts + 1))
done
python3 -c "
r, a, d, p, n = $rounds, $accepted, $drafted, $prompts, $n
print(f'{p} prompts x {n} tokens, K=$k: {a}/{d} drafts accepted ({100*a/d:.1f}%), {(r+a)/r:.2f} tokens per main forward')
"
