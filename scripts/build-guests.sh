#!/usr/bin/env bash
# Builds every guest component the tests, examples and benchmarks use, from source.
# Pinned by each guest's Cargo.lock; cargo's own cache makes a second run quick.
#
#   scripts/build-guests.sh            Rust guests (tests and examples)
#   scripts/build-guests.sh --all      also the C, Python and JavaScript examples
#   scripts/build-guests.sh --check    also verify committed example binaries rebuild identically
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
# Each guest workspace builds into its own target/, where the tests look for it; a
# CARGO_TARGET_DIR set for the host build would send guests elsewhere.
unset CARGO_TARGET_DIR

all=false; check=false
for arg in "$@"; do
  case "$arg" in
    --all) all=true ;;
    --check) check=true ;;
    *) echo "unknown option $arg" >&2; exit 2 ;;
  esac
done

for target in wasm32-wasip2 wasm32-wasip1; do
  rustup target list --installed | grep -qx "$target" || rustup target add "$target"
done

echo "== test guests"
(cd tests/guests && cargo build --locked --target wasm32-wasip2 --release -q)
# http-guest as a WASI preview 1 core module too, as older Spin SDKs build (adapted at load).
(cd tests/guests && cargo build --locked --target wasm32-wasip1 --release -q -p http-guest)

for ex in spin-rust-router rust-sqlite users-api/api calculator/calculator http-middleware/auth plugin-host/plugins; do
  echo "== examples/$ex"
  (cd "examples/$ex" && cargo build --locked --target wasm32-wasip2 --release -q)
done

if $check; then
  echo "== vendored WIT"
  scripts/vendor-wit.sh --check
fi

echo "== examples/hello-rust"
committed=$(sha256sum examples/hello-rust/hello_rust.wasm | cut -d' ' -f1)
(cd examples/hello-rust && cargo build --locked --target wasm32-wasip2 --release -q)
rebuilt=$(sha256sum examples/hello-rust/target/wasm32-wasip2/release/hello_rust.wasm | cut -d' ' -f1)
if $check && [ "$committed" != "$rebuilt" ]; then
  echo "examples/hello-rust/hello_rust.wasm does not match a rebuild from source ($committed vs $rebuilt)" >&2
  echo "  fix: cd examples/hello-rust && tessera build, then commit hello_rust.wasm" >&2
  exit 1
fi

if $all; then
  # The examples' own build scripts would each make a venv or install node_modules of
  # their own; here they share one of each (the same pins).
  VIRTUAL_ENV=$(scripts/python-spin-venv.sh); export VIRTUAL_ENV
  for js in examples/calculator/frontend examples/plugin-host/plugins/js-rules; do
    [ -e "$js/node_modules" ] || ln -s "$root/examples/hello-js/node_modules" "$js/node_modules"
  done
  echo "== tests/guests/python-spin (Python Spin SDK)"
  tests/guests/python-spin/build.sh
  echo "== tests/guests/python-calc (componentize-py)"
  tests/guests/python-calc/build.sh
  for ex in hello-c hello-python hello-js python-kv; do
    if [ -x "examples/$ex/build.sh" ]; then
      echo "== examples/$ex"
      "examples/$ex/build.sh"
    fi
  done
  echo "== examples/users-api/db (componentize-py)"
  examples/users-api/db/build.sh
  echo "== examples/http-middleware/app (Python Spin SDK)"
  examples/http-middleware/app/build.sh
  echo "== examples/plugin-host/plugins/js-rules (componentize-js)"
  examples/plugin-host/plugins/js-rules/build.sh
  echo "== examples/plugin-host/plugins/python-rules (componentize-py)"
  examples/plugin-host/plugins/python-rules/build.sh
  echo "== examples/calculator/frontend (componentize-js)"
  examples/calculator/frontend/build.sh
  echo "== tests/guests/js-calc (componentize-js)"
  tests/guests/js-calc/build.sh
fi
echo "guests built"
