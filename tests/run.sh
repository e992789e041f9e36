#!/usr/bin/env bash
# Runs every test: unit tests, and the end-to-end suite (which builds the
# example plugins from source on first use). Works on a fresh machine with
# the Rust toolchain; installs the wasm32-wasip2 target when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2
cargo test --workspace --locked "$@"
