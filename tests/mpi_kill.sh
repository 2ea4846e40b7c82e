#!/usr/bin/env bash
# Usage: mpi_kill.sh NP BTL ARGS...
# Starts `mpi_run.sh NP BTL ARGS...` (a run of several seconds), kills rank 1
# with SIGKILL once it is computing, and passes when the job exits non-zero
# within 10 s of the kill (the other ranks must not hang in an exchange).
set -u
here="$(cd "$(dirname "$0")" && pwd)"
np="$1"; btl="$2"; shift 2
"$here/mpi_run.sh" "$np" "$btl" "$@" >/dev/null 2>&1 &
job=$!
victim=""
for _ in $(seq 100); do  # find rank 1 among mpirun's children
  for pid in $(pgrep -P "$job"); do
    if tr '\0' '\n' < "/proc/$pid/environ" 2>/dev/null | grep -qx 'OMPI_COMM_WORLD_RANK=1'; then victim=$pid; fi
  done
  [ -n "$victim" ] && break
  sleep 0.1
done
if [ -z "$victim" ]; then echo "rank 1 not found"; kill "$job"; exit 1; fi
sleep 1.5
if ! kill -0 "$job" 2>/dev/null; then echo "the job ended before the kill: make it longer"; exit 1; fi
kill -9 "$victim"
start=$(date +%s%N)
for _ in $(seq 100); do kill -0 "$job" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$job" 2>/dev/null; then echo "still running 10 s after rank 1 was killed (hang)"; kill -9 "$job"; exit 1; fi
wait "$job"; rc=$?
took=$(( ($(date +%s%N) - start) / 1000000 ))
if [ "$rc" -eq 0 ]; then echo "the job exited 0 after rank 1 was killed"; exit 1; fi
echo "ok: rank 1 killed, job exited $rc after ${took} ms"
