#!/usr/bin/env bash
# Builds python-rules.wasm with componentize-py 0.25.1 (pinned in requirements.txt): in the
# active virtualenv ($VIRTUAL_ENV) when there is one, else in .venv here, made on first use.
set -euo pipefail
cd "$(dirname "$0")"
venv=${VIRTUAL_ENV:-$PWD/.venv}
if ! "$venv/bin/python" -c 'import sys' 2>/dev/null || [ ! -x "$venv/bin/componentize-py" ]; then
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  "$venv/bin/pip" install -q -r requirements.txt
fi
PATH="$venv/bin:$PATH" VIRTUAL_ENV="$venv" componentize-py -d ../../wit -w acme:discounts/rules componentize app -o python-rules.wasm
echo "built $(du -h python-rules.wasm | cut -f1) python-rules.wasm"
