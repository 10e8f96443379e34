#!/usr/bin/env bash
# Builds app.wasm with the Python Spin SDK 5.0 and componentize-py 0.25.1 (a venv made by
# scripts/python-spin-venv.sh).
set -euo pipefail
cd "$(dirname "$0")"
venv=$(../../scripts/python-spin-venv.sh)
PATH="$venv/bin:$PATH" VIRTUAL_ENV="$venv" componentize-py -w spin:up/http-trigger@4.1.0 componentize app -o app.wasm
