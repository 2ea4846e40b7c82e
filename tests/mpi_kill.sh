#!/usr/bin/env bash
# Usage: mpi_kill.sh NP BTL ARGS...
# Starts `mpi_run.sh NP BTL ARGS...` (a run of several seconds), kills rank 1
# with SIGKILL once it is computing, and passes when the job exits non-zero
# within 10 s of the kill (the other ranks must not hang in an exchange).
set -u
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/mpi_kill_lib.sh"
np="$1"; btl="$2"; shift 2
"$here/mpi_run.sh" "$np" "$btl" "$@" >/dev/null 2>&1 &
job=$!
victim=$(rank_pid "$job" 1) || { echo "rank 1 not found"; kill "$job"; exit 1; }
sleep 1.5
if ! kill -0 "$job" 2>/dev/null; then echo "the job ended before the kill: make it longer"; exit 1; fi
kill_and_wait "$job" "$victim"
if [ "$rc" -eq 0 ]; then echo "the job exited 0 after rank 1 was killed"; exit 1; fi
echo "ok: rank 1 killed, job exited $rc after ${took} ms"
