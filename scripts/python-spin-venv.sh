#!/usr/bin/env bash
# Prints the path of a venv holding the Python Spin SDK and componentize-py (pinned),
# creating it on first use. Shared by every Python Spin SDK app in this repository.
set -euo pipefail
venv="$(cd "$(dirname "$0")/.." && pwd)/target/python-spin-venv"
if [ ! -x "$venv/bin/componentize-py" ]; then
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install -q componentize-py==0.25.1 spin-sdk==5.0.0 >&2
fi
echo "$venv"
