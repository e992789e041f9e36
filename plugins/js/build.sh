#!/usr/bin/env bash
# Builds the JavaScript example plugin with componentize-qjs (QuickJS; npm,
# pinned in package-lock.json). Output: plugins/js/example/example.wasm
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"
# `npm install`, not `npm ci`: npm leaves other platforms' optional bindings out of the lock file.
[ -x node_modules/.bin/componentize-qjs ] || npm install --no-audit --no-fund --loglevel=error
npm run --silent build
ls -l example/example.wasm
