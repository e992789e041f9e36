#!/usr/bin/env bash
# Runs every fuzz target for SECONDS (default 60) each, starting from the
# kept corpus in host/fuzz/corpus/<target>; new inputs go to a scratch
# directory, so the work tree stays clean. A crash stops the run with the
# failing input in host/fuzz/artifacts/<target>/. Installs cargo-fuzz on
# first use. Runs on the stable toolchain without a sanitizer (`-s none`):
# the code under test is safe Rust, and libFuzzer's coverage guidance needs
# no nightly.
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds="${1:-60}"
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
cargo fuzz build --fuzz-dir host/fuzz -s none
for target in filter run_json body batch multipart; do
  mkdir -p "$scratch/$target"
  printf '== %s: %ss\n' "$target" "$seconds"
  status=0
  cargo fuzz run --fuzz-dir host/fuzz -s none "$target" "$scratch/$target" "host/fuzz/corpus/$target" -- \
    -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 >"$scratch/$target.log" 2>&1 \
    || status=$?
  grep -E 'DONE|^Done |^stat::(number_of_executed_units|peak_rss_mb)' "$scratch/$target.log" || true
  if [ "$status" -ne 0 ]; then
    tail -n 60 "$scratch/$target.log"
    echo "fuzz target $target failed (exit $status); the input is in host/fuzz/artifacts/$target/"
    exit 1
  fi
done
