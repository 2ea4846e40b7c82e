#!/usr/bin/env bash
# Builds the libFuzzer targets with clang + ASan/UBSan and runs each for
# SECONDS (default 60) on the seed corpus in tests/fuzz/corpus.
# Usage: scripts/fuzz.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-60}"
for p in clang libomp-14-dev; do
  dpkg -s "$p" >/dev/null 2>&1 || { sudo_cmd=""; [ "$(id -u)" -ne 0 ] && sudo_cmd=sudo; $sudo_cmd apt-get install -y -q "$p"; }
done
CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DDSV3_FUZZ=ON -DDSV3_TESTS=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build build-fuzz --target fuzz_safetensors fuzz_config fuzz_gguf
for t in safetensors config gguf; do
  work="build-fuzz/corpus-$t"
  mkdir -p "$work"
  echo "fuzz_$t: ${secs}s"
  "build-fuzz/tests/fuzz/fuzz_$t" -max_total_time="$secs" -max_len=65536 -timeout=10 -rss_limit_mb=4096 \
    "$work" "tests/fuzz/corpus/$t" 2>&1 | tail -n 3
done
echo "fuzz: all targets ran clean"
