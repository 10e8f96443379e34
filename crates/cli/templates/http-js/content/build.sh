#!/usr/bin/env bash
# Builds app.wasm with componentize-js 0.23 (pinned in package-lock.json) against the
# world in wit/; the first build runs npm install.
set -euo pipefail
cd "$(dirname "$0")"
[ -d node_modules ] || npm install --no-audit --no-fund
node node_modules/@bytecodealliance/componentize-js/src/cli.js app.js --wit wit -n app -o app.wasm
echo "built $(du -h app.wasm | cut -f1) app.wasm"
