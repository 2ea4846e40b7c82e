#!/usr/bin/env bash
# Usage: mpi_train_compare.sh [--steps-only] REF OUT
# Passes when two `dsv3 train` checkpoint directories hold the same run, bit
# for bit: model.safetensors identical (cmp), the tensor bytes of
# optimizer.safetensors identical (its header differs only in the recorded
# options, e.g. --out), and train_log.jsonl identical once the wall-clock
# fields ("seconds", "comm") are dropped: every logged loss, MTP loss,
# balance loss, gradient norm, learning rate, validation loss and MaxVio is
# printed with all its digits there. --steps-only compares only the
# training-step lines of the log (a run in sessions, --stop-at, also logs a
# validation pass at each stop).
set -u
only=""
if [ "$1" = "--steps-only" ]; then only=1; shift; fi
ref="$1"; out="$2"
fail() { echo "FAIL: $*"; exit 1; }
cmp "$ref/model.safetensors" "$out/model.safetensors" || fail "model.safetensors differs"
body() {  # the tensor bytes after the 8-byte length and the JSON header
  local n; n=$(od -An -t u8 -N8 "$1" | tr -d ' ')
  tail -c +$((n + 9)) "$1"
}
cmp <(body "$ref/optimizer.safetensors") <(body "$out/optimizer.safetensors") ||
  fail "optimizer.safetensors tensors differ"
clean() {
  if [ -n "$only" ]; then grep '"loss"' "$1"; else cat "$1"; fi | sed -E 's/"comm":\{[^}]*\},?//; s/"seconds":[^,}]*,?//'
}
[ -s "$ref/train_log.jsonl" ] || fail "$ref/train_log.jsonl is empty"
diff <(clean "$ref/train_log.jsonl") <(clean "$out/train_log.jsonl") || fail "train_log.jsonl differs"
echo "bit-identical: $(grep -c '"loss"' "$ref/train_log.jsonl") steps, model and optimizer state"
