//! {{name}}: a runhook plugin in Rust that decides matches and evaluates runs.
//!
//! The contract is `wit/runhook.wit` (the `match-evaluate-plugin` world): every
//! argument is JSON text, every `result` error lands in the rule's log.
//! Build: ./build.sh  ->  {{name}}.wasm; try: runhook plugin run {{name}}.wasm --match run.json

use serde_json::Value;

wit_bindgen::generate!({ path: "wit", world: "runhook:plugin/match-evaluate-plugin" });

use exports::runhook::plugin::{evaluator, matcher};
use runhook::plugin::host::{Level, log};

struct Plugin;

impl matcher::Guest for Plugin {
    /// Selects LLM runs that errored (config: `{"run_types": ["llm"]}`).
    fn matches(run: String, config: String) -> Result<bool, String> {
        let run: Value = serde_json::from_str(&run).map_err(|e| format!("run: {e}"))?;
        let config: Value = serde_json::from_str(&config).unwrap_or(Value::Null);
        let run_type = run["run_type"].as_str().unwrap_or_default();
        let type_ok = match &config["run_types"] {
            Value::Null => run_type == "llm",
            Value::Array(types) => types.iter().any(|t| t.as_str() == Some(run_type)),
            other => return Err(format!("config.run_types must be a list of strings, got {other}")),
        };
        let errored = !matches!(&run["error"], Value::Null) && run["error"] != "";
        Ok(type_ok && errored)
    }
}

impl evaluator::Guest for Plugin {
    /// Scores the answer's length, up to 200 characters, into `answer_length`.
    fn evaluate(run: String, _config: String) -> Result<String, String> {
        let run: Value = serde_json::from_str(&run).map_err(|e| format!("run: {e}"))?;
        let answer = run["outputs"]["output"].as_str().unwrap_or_default();
        let score = (answer.chars().count() as f64 / 200.0).min(1.0);
        log(Level::Debug, &format!("answer of {} chars", answer.chars().count()));
        Ok(serde_json::json!([{"key": "answer_length", "score": score}]).to_string())
    }
}

export!(Plugin);
