#!/usr/bin/env bash
# Builds db.wasm with componentize-py 0.25.1 and the Python Spin SDK 5.0 (which brings
# the fermyon:spin@2.0.0 WIT). Uses the repository's shared venv when there is one, else a
# venv of its own here, so the example also builds on its own.
set -euo pipefail
cd "$(dirname "$0")"
if [ -x ../../../scripts/python-spin-venv.sh ]; then
  venv=$(../../../scripts/python-spin-venv.sh)
else
  venv=$PWD/.venv
  [ -x "$venv/bin/componentize-py" ] || { python3 -m venv "$venv" && "$venv/bin/pip" install -q componentize-py==0.25.1 spin-sdk==5.0.0; }
fi
PATH="$venv/bin:$PATH" VIRTUAL_ENV="$venv" componentize-py -d ../wit -w example:users/db componentize app -o db.wasm
