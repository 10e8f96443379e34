#!/usr/bin/env bash
# Installs, by name and pinned, the toolchains scripts/build-guests.sh needs: the wasm32-wasip2
# and wasm32-wasip1 Rust targets, wasm-tools and wit-bindgen, zig (C guests) and componentize-py (Python guests),
# and the npm packages of the JavaScript example. Each step is skipped when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

rustup target add wasm32-wasip2 wasm32-wasip1
if ! command -v wasm-tools >/dev/null || ! command -v wit-bindgen >/dev/null; then
  cargo install --locked wasm-tools@1.263.0 wit-bindgen-cli@0.63.0
fi
python3 -m pip install -q ziglang==0.17.0 componentize-py==0.25.1
# npm ci installs exactly what package-lock.json pins (and leaves it as committed).
(cd examples/hello-js && npm ci --no-audit --no-fund)
