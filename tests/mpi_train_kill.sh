#!/usr/bin/env bash
# Usage: mpi_train_kill.sh NP BTL DIR DSV3 TRAIN_ARGS...
# A data-parallel `dsv3 train` (TRAIN_ARGS, with --save-every and enough
# --steps to run for several seconds) writing DIR/out is started with NP
# ranks; once a checkpoint exists, rank 1 is killed with SIGKILL. Passes when
# (1) the whole job exits non-zero within 10 s, mpirun naming the dead rank
# and a surviving rank the step it was in (rank 0 usually; but a rank whose
# TCP connection to the dead one fails is ended by Open MPI itself with
# _exit(), which runs no handler, so any survivor's note counts);
# (2) the checkpoint left is whole (no step lost beyond it) and
# `--resume --stop-at S+3` over NP ranks continues it: its model and the
# logged losses are bit-identical to one uninterrupted process stopped at the
# same step S+3.
set -u
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/mpi_kill_lib.sh"
np="$1"; btl="$2"; dir="$3"; dsv3="$4"; shift 4
rm -rf "$dir"; mkdir -p "$dir"
"$here/mpi_run.sh" "$np" "$btl" "$dsv3" -t 1 "$@" --out "$dir/out" >"$dir/killed.txt" 2>&1 &
job=$!
for _ in $(seq 200); do [ -f "$dir/out/optimizer.safetensors" ] && break; sleep 0.05; done
[ -f "$dir/out/optimizer.safetensors" ] || { echo "no checkpoint appeared"; kill "$job"; exit 1; }
victim=$(rank_pid "$job" 1) || { echo "rank 1 not found"; kill "$job"; exit 1; }
sleep 0.5
kill -0 "$job" 2>/dev/null || { echo "the job ended before the kill: make it longer"; exit 1; }
kill_and_wait "$job" "$victim"
[ "$rc" -ne 0 ] || { echo "the job exited 0 after rank 1 was killed"; exit 1; }
grep -q "process rank 1 .*exited on signal 9" "$dir/killed.txt" || { echo "no message names rank 1:"; cat "$dir/killed.txt"; exit 1; }
note=$(grep -o "rank [02-9][0-9]*: stopped by the job during step [0-9]* ([^)]*)" "$dir/killed.txt" | head -n 1)
[ -n "$note" ] || { echo "no surviving rank said which step it was in:"; cat "$dir/killed.txt"; exit 1; }
# The step the checkpoint holds (its metadata), then three more steps.
saved=$(head -c 100000 "$dir/out/optimizer.safetensors" | grep -ao '"step":"[0-9]*"' | grep -o '[0-9]*')
[ -n "$saved" ] || { echo "the checkpoint's step is unreadable"; exit 1; }
stop=$((saved + 3))
"$here/mpi_run.sh" "$np" "$btl" "$dsv3" -t 1 "$@" --out "$dir/out" --resume --stop-at "$stop" >"$dir/resumed.txt" 2>&1 ||
  { echo "resume failed:"; cat "$dir/resumed.txt"; exit 1; }
"$dsv3" -t 2 "$@" --out "$dir/ref" --stop-at "$stop" >"$dir/ref.txt" 2>&1 || { echo "reference failed"; exit 1; }
"$here/mpi_train_compare.sh" --steps-only "$dir/ref" "$dir/out" >"$dir/compare.txt" || { cat "$dir/compare.txt"; exit 1; }
echo "ok: rank 1 killed, job exited $rc after ${took} ms ($note); resumed from step $saved to $stop"
