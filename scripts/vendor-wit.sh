#!/usr/bin/env bash
# Writes the WASI 0.2 WIT that the Python and JavaScript examples and templates build
# against, from the `wasip2` crate pinned in scripts/c-component-tools, so each example
# builds on its own when copied out of the repository. componentize-js 0.23 exports
# wasi:http@0.2.10, so its copies are relabelled 0.2.10 (the interfaces are the same).
#
#   scripts/vendor-wit.sh           rewrite the copies
#   scripts/vendor-wit.sh --check   fail if a committed copy differs from the pinned crate
set -euo pipefail
cd "$(dirname "$0")/.."
src=$(cargo metadata --manifest-path scripts/c-component-tools/Cargo.toml --format-version 1 --locked |
  python3 -c 'import json,sys; print(next(p["manifest_path"] for p in json.load(sys.stdin)["packages"] if p["name"]=="wasip2").rsplit("/",1)[0] + "/wit/deps")')

# Destination (its deps/ folder) and the version label it gets.
copies=(
  "crates/cli/templates/.wasi-http/deps 0.2.12"
  "examples/hello-python/wit/deps 0.2.12"
  "examples/hello-js/wit/deps 0.2.10"
  "examples/calculator/frontend/wit/deps 0.2.10"
)
check=false; [ "${1:-}" = "--check" ] && check=true
status=0
for copy in "${copies[@]}"; do
  read -r dest version <<<"$copy"
  fresh=$(mktemp -d)
  for f in "$src"/*.wit; do
    sed -e "s/@0\.2\.12/@$version/g" -e "s/version = 0\.2\.12/version = $version/g" "$f" > "$fresh/$(basename "$f")"
  done
  if $check; then
    for f in "$fresh"/*.wit; do
      if ! cmp -s "$f" "$dest/$(basename "$f")"; then
        echo "$dest/$(basename "$f") differs from the pinned wasip2 crate's WIT" >&2
        echo "  fix: scripts/vendor-wit.sh, then commit $dest" >&2
        status=1
      fi
    done
  else
    mkdir -p "$dest"
    cp "$fresh"/*.wit "$dest/"
  fi
  rm -rf "$fresh"
done
exit $status
