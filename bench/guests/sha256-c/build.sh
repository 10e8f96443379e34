#!/usr/bin/env bash
# Builds sha256_c.wasm (see scripts/c-component.sh for the tools it needs) at -O2; the
# native build of sha256.c (gcc -O3 -march=native, see bench/build.rs) is the stronger side.
set -euo pipefail
cd "$(dirname "$0")"
exec ../../../scripts/c-component.sh sha256_c.wasm guest.c sha256.c ../respond.c -- -O2 -s -I"$PWD" -I"$PWD/.."
