#!/usr/bin/env bash
# Builds app.wasm with componentize-js 0.23 (pinned in package-lock.json). It exports
# wasi:http/incoming-handler@0.2.10, so it gets a 0.2.10 WIT: the 0.2.12 WIT of the
# `wasip2` crate (which the Rust test guests depend on) relabelled to 0.2.10.
set -euo pipefail
cd "$(dirname "$0")"
[ -d node_modules ] || npm install --no-audit --no-fund
src=$(cd ../../tests/guests && cargo metadata --format-version 1 --locked |
  python3 -c 'import json,sys; print(next(p["manifest_path"] for p in json.load(sys.stdin)["packages"] if p["name"]=="wasip2").rsplit("/",1)[0] + "/wit/deps")')
wit=$(mktemp -d)
trap 'rm -rf "$wit"' EXIT
mkdir -p "$wit/deps"
for f in "$src"/*.wit; do
  sed -e 's/@0\.2\.1[12]/@0.2.10/g' -e 's/version = 0\.2\.1[12]/version = 0.2.10/g' "$f" > "$wit/deps/$(basename "$f")"
done
cat > "$wit/world.wit" <<'WIT'
package tessera:hello-js;
world hello {
  export wasi:http/incoming-handler@0.2.10;
}
WIT
node node_modules/@bytecodealliance/componentize-js/src/cli.js app.js --wit "$wit" -n hello -o app.wasm
echo "built $(du -h app.wasm | cut -f1) app.wasm"
