#!/usr/bin/env bash
# Builds every plugin SDK example and test fixture from source.
# Output: plugins/rust/target/wasm32-wasip2/release/*.wasm
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2
cargo build --release --target wasm32-wasip2 --manifest-path "$here/rust/Cargo.toml" --target-dir "$here/rust/target" "$@"
ls -1 "$here/rust/target/wasm32-wasip2/release/"*.wasm
