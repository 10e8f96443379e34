#!/usr/bin/env bash
# Where a request's time goes: samples `tessera up` (release build) under wrk load with
# `perf record -e cpu-clock` (software clock: works where hardware counters do not) and
# prints the samples grouped by crate / library, then the hottest symbols.
#
#   bench/profile.sh [APP_DIR] [SECONDS]      (default: examples/hello-c, 5)
# Needs: perf (Debian linux-perf), wrk, and the release build `bench/run.py` makes.
set -euo pipefail
cd "$(dirname "$0")/.."
app=${1:-examples/hello-c}; seconds=${2:-5}
work=$(mktemp -d)
trap 'kill $server 2>/dev/null || true; rm -rf "$work"' EXIT
target/release/tessera up -f "$app" --listen 127.0.0.1:0 --cache-dir "$work/cache" >"$work/out" 2>&1 &
server=$!
until url=$(grep -o 'http://127.0.0.1:[0-9]*' "$work/out" | head -1) && [ -n "$url" ]; do sleep 0.05; done
wrk -t1 -c32 -d$((seconds + 4))s "$url/" >"$work/wrk" &
sleep 2
perf record -e cpu-clock -F 4000 -p "$server" -o "$work/perf.data" -- sleep "$seconds" >/dev/null 2>&1
wait %2 2>/dev/null || sleep 3
grep Requests/sec "$work/wrk"
perf report -i "$work/perf.data" --no-children --sort sym --stdio -g none 2>/dev/null | python3 -c '
import collections, re, sys
groups, top = collections.Counter(), []
for line in sys.stdin:
    m = re.match(r"\s*([\d.]+)%\s+\[(.)\]\s+(.*)", line)
    if not m:
        continue
    pct, kind, sym = float(m.group(1)), m.group(2), m.group(3).strip()
    top.append((pct, sym))
    if kind == "k":
        key = "kernel"
    else:
        key = re.split(r"::|\s", sym.lstrip("<&*"))[0]
        if key.startswith(("wasm[", "component-trampolines", "array_to_wasm", "wasm_to_array")):
            key = "guest code and trampolines"
        elif key in ("malloc", "cfree@GLIBC_2.2.5", "_int_free", "_int_malloc", "malloc_consolidate", "mi_free", "_mi_malloc_generic", "mi_malloc", "_mi_page_malloc") or key.startswith(("mi_", "_mi_")):
            key = "allocator"
        elif key.startswith("__mem"):
            key = "memcpy/memset"
    groups[key] += pct
print("\nsamples by crate or library:")
for k, v in groups.most_common(14):
    print(f"  {v:6.2f}%  {k}")
print("\nhottest symbols:")
for pct, sym in top[:15]:
    print(f"  {pct:6.2f}%  {sym[:110]}")
'
