#!/usr/bin/env bash
# Usage: mpi_expect_fail.sh LINES REGEX CMD ARGS...
# Passes when CMD (an mpirun job) exits non-zero within 60 s and its output
# has LINES "dsv3: error:" lines matching REGEX (one per rank that reports;
# "N+" for at least N, where an abort may kill ranks before they print).
set -u
lines="$1"; regex="$2"; shift 2
out=$(timeout 60 "$@" 2>&1); rc=$?
if [ "$rc" -eq 0 ]; then echo "expected a non-zero exit status; output: $out"; exit 1; fi
if [ "$rc" -eq 124 ]; then echo "timed out (a hang); output: $out"; exit 1; fi
got=$(grep -cE -- "dsv3: error: .*$regex" <<<"$out")
min="${lines%+}"
if [ "$min" != "$lines" ]; then [ "$got" -ge "$min" ]; else [ "$got" -eq "$lines" ]; fi
if [ $? -ne 0 ]; then echo "expected $lines error lines matching /$regex/, got $got: $out"; exit 1; fi
echo "ok (exit $rc): $(grep -m1 'dsv3: error:' <<<"$out")"
