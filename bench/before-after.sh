#!/usr/bin/env bash
# Hello-world throughput of two tessera binaries side by side, wrk rounds alternating, for the
# before/after figures a hot-path change lands with (when `bench/run.py --only hello` cannot
# run, e.g. without wasmtime-cli):
#
#   git worktree add /tmp/base <commit> && (cd /tmp/base && cargo build --release -p tessera)
#   cargo build --release -p tessera
#   bench/before-after.sh /tmp/base/target/release/tessera target/release/tessera
set -euo pipefail
cd "$(dirname "$0")/.."
before=$1 after=$2 rounds=${ROUNDS:-3}
cache=$(mktemp -d)
trap 'rm -rf "$cache"' EXIT
for app in hello-rust hello-c; do
  ports=()
  pids=()
  for bin in "$before" "$after"; do
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    "$bin" up -f "examples/$app" --listen "127.0.0.1:$port" --cache-dir "$cache/${#ports[@]}" >/dev/null 2>&1 &
    pids+=($!)
    ports+=("$port")
  done
  for port in "${ports[@]}"; do
    for _ in $(seq 1 150); do curl -sf "http://127.0.0.1:$port/" >/dev/null && break; sleep 0.2; done
  done
  for r in $(seq 1 "$rounds"); do
    for i in 0 1; do
      rps=$(wrk -t1 -c32 -d5s "http://127.0.0.1:${ports[$i]}/" | awk '/Requests\/sec/ {print $2}')
      echo "$app $([ "$i" = 0 ] && echo before || echo after) round $r: $rps req/s"
    done
  done
  kill "${pids[@]}"
  wait "${pids[@]}" 2>/dev/null || true
done
