#!/usr/bin/env bash
# Builds sleep_c.wasm (see scripts/c-component.sh for the tools it needs).
set -euo pipefail
cd "$(dirname "$0")"
exec ../../../scripts/c-component.sh sleep_c.wasm guest.c ../respond.c -- -I"$PWD/.."
