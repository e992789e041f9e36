#!/usr/bin/env bash
# Builds the Python example plugin with componentize-py (installed on first
# use into plugins/.toolchains/py). Output: plugins/python/example/example.wasm
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/../toolchains.sh"
py_toolchain
cd "$here/example"
"$TOOLS_PY/bin/componentize-py" -d "$WIT" -w match-evaluate-plugin componentize app -o example.wasm
ls -l example.wasm
