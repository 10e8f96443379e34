#!/usr/bin/env bash
# Fuzzes the parsers and matchers that read untrusted input (fuzz/), each target for
# SECONDS (default 20, the short run CI does). A crash stops the run; its input is in
# fuzz/artifacts/<target>/: fix the bug, then copy the input to fuzz/regressions/<target>/
# so the manifest crate's regression test replays it forever.
#
#   scripts/fuzz.sh              20 s per target
#   scripts/fuzz.sh 3600         an hour per target
#   scripts/fuzz.sh 600 manifest one target
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-20}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(manifest runtime_config route_matcher host_pattern)

command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz@0.13.2
# libFuzzer's instrumentation needs nightly flags; without a nightly toolchain the stable
# compiler is allowed them.
if rustup run nightly rustc --version >/dev/null 2>&1; then
  toolchain=(+nightly)
else
  toolchain=()
  export RUSTC_BOOTSTRAP=1
fi

cd fuzz
for target in "${targets[@]}"; do
  corpus=$(mktemp -d)
  log=$(mktemp)
  echo "== fuzz $target for ${seconds}s"
  if ! cargo "${toolchain[@]}" fuzz run "$target" "$corpus" "seeds/$target" -- \
      -max_total_time="$seconds" -print_final_stats=1 >"$log" 2>&1; then
    tail -n 60 "$log" >&2
    echo "fuzz target $target failed; the crashing input is in fuzz/artifacts/$target/" >&2
    exit 1
  fi
  grep -E "^(Done|stat::number_of_executed_units|stat::peak_rss_mb)" "$log" || true
  rm -rf "$corpus" "$log"
done
