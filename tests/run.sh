#!/usr/bin/env bash
# Runs every test: builds the plugin examples in every language from source,
# then the Rust unit and end-to-end tests, then the LangSmith SDK suite (the
# real Python SDK against the real binary), on both stores: a throwaway
# PostgreSQL is started (tests/postgres.sh) for the Postgres store's
# conformance suite, then the end-to-end and SDK suites run a second time
# with every server on it. Works on a fresh Debian machine with the Rust
# toolchain, Python 3 and Node.js: installs the wasm32-wasip2 target,
# Debian's clang and wasi-libc (for the C example), chromium and
# chromium-driver (the dashboard's browser tests, tests/sdk/test_dashboard.py;
# screenshots go to target/screenshots/) and postgresql (with sudo unless root), the guest toolchains (plugins/toolchains.sh) and a
# virtualenv with the pinned SDK (.venv) when missing. The first run takes a few minutes more
# (wit-bindgen's C generator is built from source once).
set -euo pipefail
cd "$(dirname "$0")/.."
rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2
if ! command -v clang-19 >/dev/null || [ ! -d /usr/lib/wasm32-wasi ] \
  || ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
    clang-19 lld-19 wasi-libc libclang-rt-19-dev-wasm32 chromium chromium-driver
fi
plugins/build.sh >/dev/null
. tests/postgres.sh
echo "PostgreSQL for the tests: $RUNHOOK_TEST_DATABASE_URL"
cargo test --workspace --locked "$@"

[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install --quiet --disable-pip-version-check -r tests/sdk/requirements.txt
cargo build --locked --quiet -p runhook
sdk() {
  RUNHOOK_BIN="$PWD/target/debug/runhook" .venv/bin/python -m pytest -q -p no:cacheprovider \
    -W ignore::DeprecationWarning tests/sdk
}
sdk

echo "=== the end-to-end and SDK suites again, every server on PostgreSQL"
export RUNHOOK_E2E_DATABASE=$RUNHOOK_TEST_DATABASE_URL
cargo test --locked -p runhook --test e2e "$@"
sdk
