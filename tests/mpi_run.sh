#!/usr/bin/env bash
# Usage: mpi_run.sh NP BTL PROGRAM ARGS...
# Runs PROGRAM under Open MPI's mpirun with NP ranks over the byte transfer
# layer BTL (vader = shared memory, tcp) as the tests need it: as root, more
# ranks than cores, the ob1 messaging layer (so the BTL choice is the one
# used, not UCX), one OpenMP thread per rank, passive waiting.
set -u
np="$1"; btl="$2"; shift 2
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_WAIT_POLICY=passive OMP_NUM_THREADS=1
# Sanitizer builds: no leak check under mpirun. Open MPI's dlopen'ed
# components keep allocations until exit, and their stacks end in unknown
# modules that suppressions cannot name; dsv3's own allocations are
# leak-checked by the single-process runs. ASan and UBSan stay on.
export ASAN_OPTIONS="detect_leaks=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
exec mpirun --oversubscribe -np "$np" --mca pml ob1 --mca btl "self,$btl" "$@"
