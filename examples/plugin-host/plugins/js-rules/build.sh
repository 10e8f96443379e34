#!/usr/bin/env bash
# Builds js-rules.wasm with componentize-js 0.23 (pinned in package-lock.json). Inside the
# repository it uses examples/hello-js's node_modules when they are installed.
set -euo pipefail
cd "$(dirname "$0")"
modules=node_modules
if [ ! -d "$modules" ]; then
  if [ -d ../../../hello-js/node_modules ]; then modules=../../../hello-js/node_modules; else npm install --no-audit --no-fund; fi
fi
node "$modules/@bytecodealliance/componentize-js/src/cli.js" rules.js --wit ../../wit -n rules -o js-rules.wasm
echo "built $(du -h js-rules.wasm | cut -f1) js-rules.wasm"
