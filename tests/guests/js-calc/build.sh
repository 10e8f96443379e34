#!/usr/bin/env bash
# Builds calc.wasm: the `tessera:calc/calculator` dependency of the composition tests,
# written in JavaScript with componentize-js 0.23 (the one examples/hello-js pins).
set -euo pipefail
cd "$(dirname "$0")"
js=../../../examples/hello-js
[ -d "$js/node_modules" ] || (cd "$js" && npm install --no-audit --no-fund)
wit=$(mktemp -d)
trap 'rm -rf "$wit"' EXIT
mkdir -p "$wit/deps"
cp ../calc-guest/wit/calc.wit "$wit/"
cp -r ../../../crates/capabilities/wit/deps/fermyon-spin "$wit/deps/"
node "$js/node_modules/@bytecodealliance/componentize-js/src/cli.js" calc.js --wit "$wit" -n calc -o calc.wasm
