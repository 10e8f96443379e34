#!/usr/bin/env bash
# Builds frontend.wasm with componentize-js 0.23 (pinned in package-lock.json).
set -euo pipefail
cd "$(dirname "$0")"
[ -d node_modules ] || npm install --no-audit --no-fund
node node_modules/@bytecodealliance/componentize-js/src/cli.js app.js --wit wit -n frontend -o frontend.wasm
echo "built $(du -h frontend.wasm | cut -f1) frontend.wasm"
