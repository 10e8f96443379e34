#!/usr/bin/env bash
# The test command: builds the guest components from source, then runs every test.
# Needs only the Rust toolchain; the wasm32-wasip2 target is added if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build-guests.sh --check "$@"
cargo test --workspace --locked --no-fail-fast
