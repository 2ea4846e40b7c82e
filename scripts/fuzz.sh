#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz, one per parser of untrusted input)
# with clang + ASan/UBSan and runs each for SECONDS (default 60), JOBS targets
# at a time (default 1; 2 on this 2-core machine halves the wall time). New
# inputs that add coverage are merged into the kept corpus tests/fuzz/corpus/T;
# crashes land in build-fuzz/artifacts-T/ and fail the script. Not part of CI
# (bounded, but minutes long); figures in docs/developing.md.
# Usage: scripts/fuzz.sh [SECONDS] [JOBS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-60}"
jobs="${2:-1}"
shift $(( $# > 2 ? 2 : $# ))
all=(safetensors safetensors_index config gguf tokenizer chat api_request http_head)
targets=("${@:-${all[@]}}")
for p in clang libomp-14-dev; do
  dpkg -s "$p" >/dev/null 2>&1 || { sudo_cmd=""; [ "$(id -u)" -ne 0 ] && sudo_cmd=sudo; $sudo_cmd apt-get install -y -q "$p"; }
done
CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DDSV3_FUZZ=ON -DDSV3_TESTS=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build-fuzz --target "${targets[@]/#/fuzz_}"

run_one() {  # TARGET SECONDS: fuzz, then merge what added coverage into the kept corpus
  local t="$1" secs="$2" work="build-fuzz/corpus-$1" art="build-fuzz/artifacts-$1/" log="build-fuzz/fuzz-$1.log"
  mkdir -p "$work" "$art" "tests/fuzz/corpus/$t"
  local rc=0
  "build-fuzz/tests/fuzz/fuzz_$t" -max_total_time="$secs" -max_len=16384 -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix="$art" -print_final_stats=1 "$work" "tests/fuzz/corpus/$t" >"$log" 2>&1 || rc=$?
  "build-fuzz/tests/fuzz/fuzz_$t" -merge=1 -max_len=16384 "tests/fuzz/corpus/$t" "$work" >>"$log" 2>&1 || true
  local runs cov
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
  cov=$(grep -o 'cov: [0-9]* ft: [0-9]*' "$log" | tail -n 1 || true)
  if [ "$rc" -ne 0 ]; then
    echo "fuzz_$t: FAILED (exit $rc) - see $log and $art"; grep -m 3 -E 'ERROR|SUMMARY' "$log" || true
    return 1
  fi
  echo "fuzz_$t: ${secs}s, $runs inputs, $cov, corpus $(ls "tests/fuzz/corpus/$t" | wc -l) files, no crash"
}
export -f run_one
printf '%s\n' "${targets[@]}" | xargs -P "$jobs" -I{} bash -c "run_one {} $secs"
echo "fuzz: all targets ran clean"
