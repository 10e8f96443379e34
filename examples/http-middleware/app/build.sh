#!/usr/bin/env bash
# Builds app.wasm with the Python Spin SDK 5.0 and componentize-py 0.25.1: the repository's
# shared venv when there is one, else a venv of its own here.
set -euo pipefail
cd "$(dirname "$0")"
if [ -x ../../../scripts/python-spin-venv.sh ]; then
  venv=$(../../../scripts/python-spin-venv.sh)
else
  venv=$PWD/.venv
  [ -x "$venv/bin/componentize-py" ] || { python3 -m venv "$venv" && "$venv/bin/pip" install -q componentize-py==0.25.1 spin-sdk==5.0.0; }
fi
PATH="$venv/bin:$PATH" VIRTUAL_ENV="$venv" componentize-py -w spin:up/http-trigger@4.1.0 componentize app -o app.wasm
