#!/usr/bin/env bash
# Runs every test: the Rust unit and end-to-end tests (which build the
# example plugins from source on first use), then the LangSmith SDK suite
# (the real Python SDK against the real binary). Works on a fresh machine
# with the Rust toolchain and Python 3: installs the wasm32-wasip2 target and
# a virtualenv with the pinned SDK (.venv) when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2
cargo test --workspace --locked "$@"

[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install --quiet --disable-pip-version-check -r tests/sdk/requirements.txt
cargo build --locked --quiet -p runhook
RUNHOOK_BIN="$PWD/target/debug/runhook" .venv/bin/python -m pytest -q -p no:cacheprovider \
  -W ignore::DeprecationWarning tests/sdk
