#!/usr/bin/env bash
# Usage: signal_cleanup_test.sh DSV3 TMP convert MODEL_DIR
#        signal_cleanup_test.sh DSV3 TMP train MODEL_CONFIG DATA_DIR
# SIGINT/SIGTERM during `dsv3 convert` (GGUF file and safetensors directory
# outputs) or `dsv3 train` (checkpoints written every step) must leave no
# partial output: no OUT.tmp, OUT.dsv3-partial, OUT.dsv3-removing or *.tmp
# inside a checkpoint. Each run waits until the partial output exists, then
# sends the signal after a different extra delay, so signals land early,
# mid-write and late. A run the signal reached must end with status 128+N
# (killed by it); a run that finished first must have exited 0. Any final
# output present afterwards must be complete (`dsv3 inspect` reads it).
# Passes only if enough signals arrived while the output was partial (4 for
# convert; 2 for train, whose checkpoint files exist only for milliseconds),
# so the test cannot pass by always signalling too early or too late.
set -u -m  # -m: background jobs keep SIGINT (non-interactive shells ignore it otherwise)
dsv3=$1 tmp=$2 mode=$3
shift 3
rm -rf "$tmp" && mkdir -p "$tmp" || exit 1
mid_write=0 runs=0 failures=0

fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

# Starts "$@" in the background, waits (up to 4 s) for path $watch to exist,
# sleeps $extra, sends SIG$sig; sets rc and was_partial.
signal_run() {
  local sig=$1 extra=$2 watch=$3
  shift 3
  "$@" >/dev/null 2>"$tmp/stderr" &
  local pid=$! i
  was_partial=0
  for ((i = 0; i < 800; i++)); do
    if compgen -G "$watch" >/dev/null; then was_partial=1; break; fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.005
  done
  sleep "$extra"
  if ! compgen -G "$watch" >/dev/null; then was_partial=0; fi
  kill -s "$sig" "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null  # no job-control "Terminated" notice
  rc=$?
  runs=$((runs + 1))
}

# rc must be 0 (finished first) or 128 + the signal's number.
check_status() {
  local sig=$1 what=$2 want
  want=$((128 + $(kill -l "$sig")))
  if [ "$rc" -ne 0 ] && [ "$rc" -ne "$want" ]; then fail "$what: exit status $rc, want $want or 0: $(cat "$tmp/stderr")"; fi
  if [ "$rc" -eq "$want" ] && [ "$was_partial" -eq 1 ]; then mid_write=$((mid_write + 1)); fi
}

run_convert() {
  local model=$1 target sig extra out watch threads
  for target in gguf fp8; do
    for sig in TERM INT; do
      for extra in 0 0 0.005 0.01 0.02 0.04 0.08; do
        threads=$((runs % 2 + 1))
        out=$tmp/out-$target-$sig
        if [ "$target" = gguf ]; then out=$out.gguf watch=$out.tmp; else watch=$out.dsv3-partial; fi
        rm -rf "$out"
        signal_run "$sig" "$extra" "$watch" "$dsv3" -t "$threads" convert -q --to "$target" --buffer-mb 1 "$model" "$out"
        check_status "$sig" "convert --to $target, SIG$sig after +${extra}s (-t $threads)"
        local left
        left=$(ls -d "$out".tmp "$out".dsv3-partial "$out".dsv3-removing "$out".dsv3-old "$out"/*.tmp 2>/dev/null)
        [ -z "$left" ] || fail "convert --to $target, SIG$sig after +${extra}s: left behind: $left"
        if [ -e "$out" ] && ! "$dsv3" inspect -m "$out" >/dev/null 2>&1; then
          fail "convert --to $target, SIG$sig after +${extra}s: $out exists but is not a complete checkpoint"
        fi
        if [ "$rc" -eq 0 ] && [ ! -e "$out" ]; then fail "convert --to $target exited 0 without output"; fi
      done
    done
  done
}

run_train() {
  local config=$1 data=$2 sig extra out
  for sig in TERM INT; do
    for extra in 0 0.01 0.03 0.05 0.1 0.2; do
      out=$tmp/train-$sig-$runs
      signal_run "$sig" "$extra" "$out/*.tmp" "$dsv3" -t 1 train --model-config "$config" --data "$data" \
        --out "$out" --steps 400 --save-every 1 --batch-size 2 --seq-len 16 --eval-windows 2 --log-every 100
      check_status "$sig" "train, SIG$sig after +${extra}s"
      local left
      left=$(ls -d "$out"/*.tmp 2>/dev/null)
      [ -z "$left" ] || fail "train, SIG$sig after +${extra}s: left behind: $left"
    done
  done
}

case "$mode" in
  convert) run_convert "$@"; min_mid_write=4 ;;
  train) run_train "$@"; min_mid_write=2 ;;
  *) echo "unknown mode $mode"; exit 2 ;;
esac
echo "$runs runs, $mid_write interrupted while the output was partial, $failures failures"
[ "$mid_write" -ge "$min_mid_write" ] || fail "fewer than $min_mid_write signals arrived while the output was partial"
[ "$failures" -eq 0 ] || exit 1
rm -rf "$tmp"
echo ok
