#!/usr/bin/env bash
# Builds every plugin example and test fixture from source: the Rust SDK
# examples and fixtures, then the Python, JavaScript, C and Go examples
# (their toolchains are installed on first use; see plugins/toolchains.sh).
#   plugins/build.sh              everything
#   plugins/build.sh rust python  only these languages
# Output: plugins/rust/target/wasm32-wasip2/release/*.wasm and
#         plugins/<lang>/example/example.wasm
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
langs=("$@")
[ ${#langs[@]} -gt 0 ] || langs=(rust python js c go)
for lang in "${langs[@]}"; do
    case "$lang" in
    rust)
        rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2
        cargo build --release --target wasm32-wasip2 --manifest-path "$here/rust/Cargo.toml" --target-dir "$here/rust/target"
        ls -1 "$here/rust/target/wasm32-wasip2/release/"*.wasm
        ;;
    python | js | c | go) "$here/$lang/build.sh" ;;
    *) echo "unknown language $lang (rust, python, js, c, go)" >&2; exit 2 ;;
    esac
done
