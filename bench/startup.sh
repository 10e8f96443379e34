#!/usr/bin/env bash
# Start-up cost of a large component: process start to first 200, with the compile cache
# cold (first start) and warm (second start), for the ~18 MB hello-python example.
#
#   bench/startup.sh [path/to/tessera]     (default: target/debug/tessera, built if missing)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-target/debug/tessera}
[ -x "$bin" ] || cargo build -p tessera
[ -f examples/hello-python/app.wasm ] || examples/hello-python/build.sh
cache=$(mktemp -d)
logs=$(mktemp -d)
trap 'rm -rf "$cache" "$logs"' EXIT

first_200() {
  local port=$1 start end
  start=$(date +%s%N)
  "$bin" up -f examples/hello-python --listen "127.0.0.1:$port" --cache-dir "$cache" --log-dir "$logs" >/dev/null 2>"$logs/host.err" &
  local pid=$!
  until curl -sf -o /dev/null "http://127.0.0.1:$port/"; do sleep 0.002; done
  end=$(date +%s%N)
  kill "$pid"; wait "$pid" 2>/dev/null || true
  echo $(( (end - start) / 1000000 ))
}

port=$(( 20000 + RANDOM % 20000 ))
cold=$(first_200 "$port")
warm=$(first_200 $((port + 1)))
size=$(du -h examples/hello-python/app.wasm | cut -f1)
echo "| component | cache | process start to first 200 |"
echo "| --- | --- | --- |"
echo "| hello-python ($size) | cold | ${cold} ms |"
echo "| hello-python ($size) | warm | ${warm} ms |"
