#!/usr/bin/env bash
# Builds js-rules.wasm with componentize-js 0.23 (pinned in package-lock.json).
set -euo pipefail
cd "$(dirname "$0")"
[ -d node_modules ] || npm install --no-audit --no-fund
node node_modules/@bytecodealliance/componentize-js/src/cli.js rules.js --wit ../../wit -n rules -o js-rules.wasm
echo "built $(du -h js-rules.wasm | cut -f1) js-rules.wasm"
