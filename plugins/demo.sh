#!/usr/bin/env bash
# A tour of the plugin host: builds the example plugins and runhook, then
# checks each plugin and calls it on sample runs, including a hostile plugin
# that the sandbox stops. Everything runs locally; nothing is left running.
set -euo pipefail
cd "$(dirname "$0")/.."
plugins/build.sh rust >/dev/null
cargo build --quiet --locked -p runhook
runhook=target/debug/runhook
wasm=plugins/rust/target/wasm32-wasip2/release
samples=plugins/samples
export RUNHOOK_PLUGIN_CACHE_DIR="${RUNHOOK_PLUGIN_CACHE_DIR:-$(mktemp -d)/plugin-cache}"
step() { printf '\n\033[1m== %s\033[0m\n$ %s\n' "$1" "${*:2}"; "${@:2}" || true; }

step "Inspect a matcher (first load compiles and caches)" $runhook plugin check $wasm/llm_errors.wasm
step "Inspect it again: a restart loads from the cache" $runhook plugin check $wasm/llm_errors.wasm
step "Matcher on an errored LLM run" $runhook plugin run $wasm/llm_errors.wasm --match $samples/errored-llm-run.json
step "Matcher on a healthy chain run" $runhook plugin run $wasm/llm_errors.wasm --match $samples/answered-chain-run.json
step "Transformer: redact api_key from a webhook payload" $runhook plugin run $wasm/redact.wasm --transform $samples/payload.json --config '{"keys": ["api_key"]}'
step "Evaluator: score the answer" $runhook plugin run $wasm/output_score.wasm --evaluate $samples/answered-chain-run.json
step "A rule configured to match with a transformer is refused at load" $runhook plugin check $wasm/redact.wasm --require match
step "A plugin that loops forever is stopped at its 100 ms deadline" $runhook plugin run $wasm/hostile.wasm --match $samples/answered-chain-run.json --config '"loop"'
step "A plugin that allocates 1 GiB is stopped by the 64 MiB cap" $runhook plugin run $wasm/hostile.wasm --evaluate $samples/answered-chain-run.json --config '"alloc"'
step "The sandbox has no filesystem, environment or network" $runhook plugin run $wasm/hostile.wasm --transform $samples/payload.json --config '"probe"'
echo
echo "Done. Measure plugin call costs with: cargo run --release -p runhook-bench -- plugins"
