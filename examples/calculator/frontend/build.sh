#!/usr/bin/env bash
# Builds frontend.wasm with componentize-js 0.23 (pinned in package-lock.json). Inside the
# repository it uses examples/hello-js's node_modules when they are installed.
set -euo pipefail
cd "$(dirname "$0")"
modules=node_modules
if [ ! -d "$modules" ]; then
  if [ -d ../../hello-js/node_modules ]; then modules=../../hello-js/node_modules; else npm install --no-audit --no-fund; fi
fi
node "$modules/@bytecodealliance/componentize-js/src/cli.js" app.js --wit wit -n frontend -o frontend.wasm
echo "built $(du -h frontend.wasm | cut -f1) frontend.wasm"
