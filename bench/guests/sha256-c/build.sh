#!/usr/bin/env bash
# Builds sha256_c.wasm (see scripts/c-component.sh for the tools it needs). -O2 as the
# native build of sha256.c uses, so the comparison is of the same code at the same level.
set -euo pipefail
cd "$(dirname "$0")"
exec ../../../scripts/c-component.sh sha256_c.wasm guest.c sha256.c ../respond.c -- -O2 -s -I"$PWD" -I"$PWD/.."
