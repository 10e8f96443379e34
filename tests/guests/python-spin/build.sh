#!/usr/bin/env bash
# Builds app.wasm with the Python Spin SDK in a venv of its own (pinned versions).
set -euo pipefail
cd "$(dirname "$0")"
if [ ! -x .venv/bin/componentize-py ]; then
  python3 -m venv .venv
  .venv/bin/pip install -q componentize-py==0.25.1 spin-sdk==5.0.0
fi
. .venv/bin/activate
componentize-py -w spin:up/http-trigger@4.1.0 componentize app -o app.wasm
