#!/usr/bin/env bash
# Builds app.wasm with componentize-py (pip install componentize-py==0.25.1) against the
# wasi:http 0.2 proxy world in wit/.
set -euo pipefail
cd "$(dirname "$0")"
componentize-py -d wit -w example:hello-python/hello componentize app -o app.wasm
echo "built $(du -h app.wasm | cut -f1) app.wasm"
