#!/usr/bin/env bash
# Builds app.wasm from app.c: `wit-bindgen c` bindings for the wasi:http 0.2 proxy
# world, zig's clang for wasm32-wasi (reactor), then `wasm-tools component new` with the
# preview1 adapter. The WIT and the adapter come from the crates pinned in tools/ (cargo
# fetches them). Tools: `pip install ziglang==0.17.0`, `cargo install --locked
# wasm-tools@1.263.0 wit-bindgen-cli@0.63.0`.
set -euo pipefail
cd "$(dirname "$0")"
paths=$(cargo metadata --manifest-path tools/Cargo.toml --format-version 1 --locked |
  python3 -c 'import json,sys; d={p["name"]:p["manifest_path"].rsplit("/",1)[0] for p in json.load(sys.stdin)["packages"]}; print(d["wasip2"]); print(d["wasi-preview1-component-adapter-provider"])')
wit=$(echo "$paths" | sed -n 1p)/wit
adapter=$(echo "$paths" | sed -n 2p)/artefacts/wasi_snapshot_preview1.proxy.wasm
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
wit-bindgen c "$wit" --world wasi:http/proxy@0.2.12 --out-dir "$work/bindings" >/dev/null 2>&1
shopt -s nullglob
cp ./*.c ./*.h "$work/"
# Built in the work dir, so no absolute path of this machine ends up in the binary.
(cd "$work" && python3 -m ziglang cc --target=wasm32-wasi -mexec-model=reactor -Os -Ibindings \
  *.c bindings/proxy.c bindings/proxy_component_type.o -o core.wasm)
wasm-tools component new "$work/core.wasm" --adapt "wasi_snapshot_preview1=$adapter" -o app.wasm
echo "built $(du -h app.wasm | cut -f1) app.wasm"
