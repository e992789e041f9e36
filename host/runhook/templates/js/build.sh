#!/usr/bin/env bash
# Builds {{name}}.wasm with componentize-qjs (QuickJS), installed by npm.
set -euo pipefail
cd "$(dirname "$0")"
[ -x node_modules/.bin/componentize-qjs ] || npm install --no-audit --no-fund --loglevel=error
npm run --silent build
echo "built $(pwd)/{{name}}.wasm"
