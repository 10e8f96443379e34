#!/usr/bin/env bash
# Builds python-rules.wasm with componentize-py 0.25.1. Uses the repository's shared venv
# when there is one, else a venv of its own here, so the example also builds on its own.
set -euo pipefail
cd "$(dirname "$0")"
if [ -x ../../../../scripts/python-spin-venv.sh ]; then
  venv=$(../../../../scripts/python-spin-venv.sh)
else
  venv=$PWD/.venv
  [ -x "$venv/bin/componentize-py" ] || { python3 -m venv "$venv" && "$venv/bin/pip" install -q componentize-py==0.25.1; }
fi
"$venv/bin/componentize-py" -d ../../wit -w rules componentize app -o python-rules.wasm
echo "built $(du -h python-rules.wasm | cut -f1) python-rules.wasm"
