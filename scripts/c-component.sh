#!/usr/bin/env bash
# Builds a C wasi:http 0.2 component: `wit-bindgen c` bindings for the proxy world, zig's
# clang for wasm32-wasi (reactor), then `wasm-tools component new` with the preview1
# adapter. Tools: `pip install ziglang==0.17.0`, `cargo install wasm-tools@1.263.0
# wit-bindgen-cli@0.63.0`; the adapter and WIT come from the crates pinned in
# scripts/c-component-tools. The first zig build compiles wasi-libc (~30 s), then caches.
#
#   scripts/c-component.sh OUT.wasm SOURCE.c... [-- EXTRA_CFLAGS...]
set -euo pipefail
out=$(realpath -m "$1"); shift
sources=(); cflags=()
while [ $# -gt 0 ]; do
  if [ "$1" = "--" ]; then shift; cflags=("$@"); break; fi
  sources+=("$(realpath "$1")"); shift
done
tools=$(dirname "$(realpath "$0")")/c-component-tools
paths=$(cargo metadata --manifest-path "$tools/Cargo.toml" --format-version 1 --locked |
  python3 -c 'import json,sys; d={p["name"]:p["manifest_path"].rsplit("/",1)[0] for p in json.load(sys.stdin)["packages"]}; print(d["wasip2"]); print(d["wasi-preview1-component-adapter-provider"])')
wit=$(echo "$paths" | sed -n 1p)/wit
adapter=$(echo "$paths" | sed -n 2p)/artefacts/wasi_snapshot_preview1.proxy.wasm
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
wit-bindgen c "$wit" --world wasi:http/proxy@0.2.12 --out-dir "$work/bindings" >/dev/null 2>&1
# Run from the work dir so no absolute build path ends up in the binary.
(cd "$work" && python3 -m ziglang cc --target=wasm32-wasi -mexec-model=reactor -Os -Ibindings \
  "${cflags[@]}" "${sources[@]}" bindings/proxy.c bindings/proxy_component_type.o -o core.wasm)
wasm-tools component new "$work/core.wasm" --adapt "wasi_snapshot_preview1=$adapter" -o "$out"
echo "built $(du -h "$out" | cut -f1) $(basename "$out")"
