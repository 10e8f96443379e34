#!/usr/bin/env bash
# Builds calc.wasm: the `tessera:calc/calculator` dependency of the composition tests,
# written in Python with componentize-py (venv from scripts/python-spin-venv.sh).
set -euo pipefail
cd "$(dirname "$0")"
venv=$(../../../scripts/python-spin-venv.sh)
wit=$(mktemp -d)
trap 'rm -rf "$wit"' EXIT
# fermyon:spin@2.0.0 (the key-value import) comes with the venv's Spin SDK.
cp ../calc-guest/wit/calc.wit "$wit/"
PATH="$venv/bin:$PATH" VIRTUAL_ENV="$venv" componentize-py -d "$wit" -w tessera:calc/calc componentize app -o calc.wasm
