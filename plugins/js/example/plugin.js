// runhook example plugin in JavaScript: a matcher and an evaluator.
//
// The same logic as the Rust examples `llm-errors` (matcher) and
// `output-score` (evaluator), so a rule gives the same result whichever
// language its plugin is written in. Each WIT interface the plugin exports is
// an exported object; `result<T, string>` is "return T, or throw a string".
//
// Matcher config (all optional): {"run_types": ["llm"], "error_contains": "timeout"}
// Evaluator config (all optional): {"key": "answer_usefulness", "target_chars": 200,
//   "refusals": ["i don't know"]}
//
// Build: plugins/js/build.sh  ->  plugins/js/example/example.wasm

import host from "runhook:plugin/host@0.1.0";

const DEFAULT_REFUSALS = ["i don't know", "i do not know", "i cannot", "i can't", "as an ai"];

const isString = (v) => typeof v === "string";
const isObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v);
// Unicode scalar values, as the Rust example counts characters.
const charCount = (s) => [...s].length;

export const matcher = {
  matches(runText, configText) {
    const run = JSON.parse(runText);
    const config = JSON.parse(configText) ?? {};
    const runType = isString(run.run_type) ? run.run_type : "";
    let typeOk;
    if (config.run_types === undefined || config.run_types === null) {
      typeOk = runType === "llm";
    } else if (Array.isArray(config.run_types)) {
      typeOk = config.run_types.some((t) => t === runType);
    } else {
      throw `config.run_types must be a list of strings, got ${JSON.stringify(config.run_types)}`;
    }
    let error = run.error;
    if (error === undefined || error === null || error === "") return false;
    error = (isString(error) ? error : JSON.stringify(error)).toLowerCase();
    const needle = config.error_contains;
    let textOk;
    if (needle === undefined || needle === null) {
      textOk = true;
    } else if (isString(needle)) {
      textOk = error.includes(needle.toLowerCase());
    } else {
      throw `config.error_contains must be a string, got ${JSON.stringify(needle)}`;
    }
    return typeOk && textOk;
  },
};

function answerText(outputs) {
  if (!isObject(outputs)) return null;
  for (const field of ["output", "answer", "text", "content"]) {
    if (isString(outputs[field])) return outputs[field];
  }
  const generated = outputs.generations?.[0]?.[0]?.text;
  if (isString(generated)) return generated;
  // The first string value, in key order (as the Rust example's map iterates).
  for (const key of Object.keys(outputs).sort()) {
    if (isString(outputs[key])) return outputs[key];
  }
  return null;
}

const feedback = (key, score, comment) => JSON.stringify([{ key, score, comment }]);

export const evaluator = {
  evaluate(runText, configText) {
    const run = JSON.parse(runText);
    const config = JSON.parse(configText) ?? {};
    const key = config.key ?? "answer_usefulness";
    if (!isString(key) || key === "") {
      throw `config.key must be a non-empty string, got ${JSON.stringify(key)}`;
    }
    const target = config.target_chars ?? 200;
    if (typeof target !== "number" || !(target > 0)) {
      throw "config.target_chars must be a positive number";
    }
    const refusals = Array.isArray(config.refusals)
      ? config.refusals.filter(isString).map((r) => r.toLowerCase())
      : DEFAULT_REFUSALS;
    const answer = answerText(run.outputs);
    if (answer === null) return feedback(key, 0, "no answer in outputs");
    const lower = answer.toLowerCase();
    const refusal = refusals.find((r) => lower.includes(r));
    if (refusal !== undefined) {
      host.log("debug", `refusal found: ${refusal}`);
      return feedback(key, 0, `refusal: "${refusal}"`);
    }
    const chars = charCount(answer);
    const score = Math.round(Math.min(chars / target, 1) * 1000) / 1000;
    return feedback(key, score, `${chars} chars`);
  },
};
