#!/usr/bin/env bash
# Builds the JavaScript example plugin with componentize-qjs (QuickJS; npm,
# pinned in package-lock.json). Output: plugins/js/example/example.wasm
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"
# `npm ci`: installs exactly the lock file and never rewrites it, so a build
# leaves the work tree clean. The lock file lists every platform's optional
# binding (as npm 11 writes it), which `npm ci` needs.
[ -x node_modules/.bin/componentize-qjs ] || npm ci --no-audit --no-fund --loglevel=error
npm run --silent build
ls -l example/example.wasm
