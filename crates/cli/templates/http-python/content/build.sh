#!/usr/bin/env bash
# Builds app.wasm with componentize-py (pinned in requirements.txt) against the world in
# wit/: in the active virtualenv ($VIRTUAL_ENV) when there is one, else in .venv here, made
# on first use.
set -euo pipefail
cd "$(dirname "$0")"
venv=${VIRTUAL_ENV:-$PWD/.venv}
if [ ! -x "$venv/bin/componentize-py" ]; then
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  "$venv/bin/pip" install -q -r requirements.txt
fi
PATH="$venv/bin:$PATH" VIRTUAL_ENV="$venv" componentize-py -d wit -w local:{{project-name}}/app componentize app -o app.wasm
echo "built $(du -h app.wasm | cut -f1) app.wasm"
