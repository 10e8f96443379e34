#!/usr/bin/env bash
# Builds app.wasm with componentize-py against the wasi:http 0.2 proxy world. The WIT
# files come from the `wasip2` crate that the Rust test guests already depend on.
set -euo pipefail
cd "$(dirname "$0")"
wit=$(cd ../../tests/guests && cargo metadata --format-version 1 --locked |
  python3 -c 'import json,sys; print(next(p["manifest_path"] for p in json.load(sys.stdin)["packages"] if p["name"]=="wasip2").rsplit("/",1)[0] + "/wit")')
componentize-py -d "$wit" -w wasi:http/proxy@0.2.12 componentize app -o app.wasm
echo "built $(du -h app.wasm | cut -f1) app.wasm"
