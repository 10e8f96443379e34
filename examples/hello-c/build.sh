#!/usr/bin/env bash
# Builds hello_c.wasm from hello.c (see scripts/c-component.sh for the tools it needs).
set -euo pipefail
cd "$(dirname "$0")"
exec ../../scripts/c-component.sh hello_c.wasm hello.c
