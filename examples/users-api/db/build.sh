#!/usr/bin/env bash
# Builds db.wasm with componentize-py 0.25.1 and the Python Spin SDK 5.0 (its
# fermyon:spin@2.0.0 WIT) (pinned in requirements.txt): in the active virtualenv
# ($VIRTUAL_ENV) when there is one, else in .venv here, made on first use.
set -euo pipefail
cd "$(dirname "$0")"
venv=${VIRTUAL_ENV:-$PWD/.venv}
if ! "$venv/bin/python" -c 'import spin_sdk' 2>/dev/null || [ ! -x "$venv/bin/componentize-py" ]; then
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  "$venv/bin/pip" install -q -r requirements.txt
fi
PATH="$venv/bin:$PATH" VIRTUAL_ENV="$venv" componentize-py -d ../wit -w example:users/db componentize app -o db.wasm
echo "built $(du -h db.wasm | cut -f1) db.wasm"
