#!/usr/bin/env bash
# CLI test helper: expect.sh RC REGEX 'shell command'
# Runs the command, then checks its exit status is RC and that its stdout +
# stderr match the extended regex REGEX (an empty REGEX checks nothing).
set -uo pipefail
want_rc=$1 regex=$2 cmd=$3
out=$(bash -c "$cmd" 2>&1)
rc=$?
printf '%s\n' "$out" | head -c 4000
if [ "$rc" != "$want_rc" ]; then echo "FAILED: exit status $rc, expected $want_rc"; exit 1; fi
if [ -n "$regex" ] && ! printf '%s\n' "$out" | grep -Eq -- "$regex"; then
  echo "FAILED: output does not match /$regex/"; exit 1
fi
echo "ok"
