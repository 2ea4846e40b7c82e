#!/usr/bin/env bash
# Usage: expect_fail.sh REGEX CMD ARGS...
# Passes when CMD exits with status 1 (a clean error, not a crash or signal)
# and its stderr matches REGEX on a single "dsv3: error:" line.
set -u
regex="$1"; shift
err=$("$@" 2>&1 >/dev/null); rc=$?
if [ "$rc" -ne 1 ]; then echo "expected exit status 1, got $rc; stderr: $err"; exit 1; fi
if ! grep -qE -- "$regex" <<<"$err"; then echo "stderr does not match /$regex/: $err"; exit 1; fi
if [ "$(grep -c 'dsv3: error:' <<<"$err")" -ne 1 ]; then echo "expected one error line: $err"; exit 1; fi
echo "ok: $err"
