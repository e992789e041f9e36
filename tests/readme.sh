#!/usr/bin/env bash
# Exercises the README's service examples against a real runhook: `serve`,
# health, metrics, and the rule-creation commands, extracted verbatim from
# the README block marked "exercised by tests/readme.sh".
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build -q --locked -p runhook
plugins/build.sh >/dev/null
work=$(mktemp -d)
export KEY=rh_readme_key_0123456789abcdef
RUNHOOK_API_KEY=$KEY target/debug/runhook serve --listen 127.0.0.1:1984 --data-dir "$work/runhook-data" \
  >"$work/out" 2>"$work/err" &
pid=$!
trap 'kill $pid 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 100); do grep -q "listening on" "$work/out" && break; sleep 0.1; done
grep -q "listening on http://127.0.0.1:1984" "$work/out" || { cat "$work/err"; exit 1; }

curl -sf http://127.0.0.1:1984/healthz >/dev/null
curl -sf http://127.0.0.1:1984/readyz >/dev/null
curl -sf http://127.0.0.1:1984/info | grep -q zstd_compression_enabled

# The README's rule examples, verbatim.
block=$(awk '/exercised by tests\/readme.sh/{found=1; next} found && /^```sh/{inside=1; next} inside && /^```/{exit} inside{print}' README.md)
[ -n "$block" ] || { echo "README block not found"; exit 1; }
out=$(bash -c "$block")
count=$(printf '%s' "$out" | grep -o '"display_name"' | wc -l)
[ "$count" -eq 2 ] || { echo "expected 2 rules created, got: $out"; exit 1; }
curl -sf -H "x-api-key: $KEY" http://127.0.0.1:1984/api/v1/runs/rules | grep -q "unhelpful answers"
curl -sf http://127.0.0.1:1984/metrics | grep -q "^runhook_outbox_depth 0"
echo "README examples: OK"
