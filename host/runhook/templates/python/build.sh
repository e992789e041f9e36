#!/usr/bin/env bash
# Builds {{name}}.wasm with componentize-py: the one on PATH, or one installed
# into .venv here on first use.
set -euo pipefail
cd "$(dirname "$0")"
if ! command -v componentize-py >/dev/null; then
    [ -x .venv/bin/componentize-py ] || { python3 -m venv .venv && .venv/bin/pip install --quiet componentize-py==0.25.1; }
    PATH="$PWD/.venv/bin:$PATH"
fi
componentize-py -d wit -w match-evaluate-plugin componentize app -o {{name}}.wasm
echo "built $(pwd)/{{name}}.wasm"
