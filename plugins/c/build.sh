#!/usr/bin/env bash
# Builds the C example plugin: `wit-bindgen c` writes the bindings (built
# from crates.io into plugins/.toolchains on first use), Debian's clang with
# wasi-libc compiles a core module, and wasm-tools wraps it into a component
# with the WASI adapter. Output: plugins/c/example/example.wasm
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/../toolchains.sh"
c_toolchain
py_toolchain
adapter
wit_bindgen_c
cd "$here/example"
rm -rf gen
"$TOOLS/cargo/bin/wit-bindgen" c "$WIT" --world match-evaluate-plugin --out-dir gen
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
"$CLANG" --target=wasm32-wasi -mexec-model=reactor -O2 -Wall -Werror -Igen -o "$out/core.wasm" \
    plugin.c json.c gen/match_evaluate_plugin.c gen/match_evaluate_plugin_component_type.o
"$TOOLS_PY/bin/wasm-tools" component new "$out/core.wasm" --adapt "wasi_snapshot_preview1=$ADAPTER" -o example.wasm
ls -l example.wasm
