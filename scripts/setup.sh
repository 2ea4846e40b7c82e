#!/usr/bin/env bash
# Installs the Debian packages dsv3 builds and tests with. Safe to run twice.
# Node.js packages used only by the tokenizer parity tests are installed by
# scripts/setup-node.sh (called from here when node is present).
set -euo pipefail
pkgs=(build-essential cmake ninja-build pkg-config
      libhwy-dev nlohmann-json3-dev libpcre2-dev libcpp-httplib-dev libcli11-dev
      libgtest-dev libgmock-dev libbenchmark-dev
      python3 chromium chromium-driver  # server end-to-end tests (stdlib only) and the headless page test
      libopenmpi-dev openmpi-bin)  # MPI (issue 14): expert-parallel runs under mpirun
missing=()
for p in "${pkgs[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -q "${missing[@]}"
fi
here="$(cd "$(dirname "$0")" && pwd)"
# Node.js runs the tokenizer parity tests' references; Debian's if none is installed.
if ! command -v node >/dev/null 2>&1 && ! command -v npm >/dev/null 2>&1; then
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -q nodejs npm ||
    echo "setup: could not install nodejs/npm: the tokenizer parity tests will be skipped"
fi
if [ -x "$here/setup-node.sh" ] && command -v npm >/dev/null 2>&1; then
  "$here/setup-node.sh"
fi
echo "setup: all packages present"
