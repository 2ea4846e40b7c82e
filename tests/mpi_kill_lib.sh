# Sourced by the killed-rank tests (mpi_kill.sh, mpi_train_kill.sh): finding
# one rank of a running mpirun job and killing it, then timing how long the
# rest of the job takes to end.

# Prints the pid of rank $2 among the children of mpirun (pid $1), waiting up
# to 10 s for it to start; fails when it does not appear.
rank_pid() {
  for _ in $(seq 100); do
    for pid in $(pgrep -P "$1"); do
      if tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$2"; then
        echo "$pid"
        return 0
      fi
    done
    sleep 0.1
  done
  return 1
}

# SIGKILLs pid $2 and waits up to 10 s for the job (pid $1) to end: sets rc
# (its exit status) and took (ms after the kill); exits the test with a
# message if the job is still running then (a hang).
kill_and_wait() {
  kill -9 "$2"
  local start
  start=$(date +%s%N)
  for _ in $(seq 100); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$1" 2>/dev/null; then echo "still running 10 s after rank 1 was killed (hang)"; kill -9 "$1"; exit 1; fi
  wait "$1"; rc=$?
  took=$(( ($(date +%s%N) - start) / 1000000 ))
}
