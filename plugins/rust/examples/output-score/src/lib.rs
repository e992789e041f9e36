//! Evaluator: score a run's answer, like a cheap online evaluator.
//!
//! Finds the answer text in the run's outputs (`output`, `answer`, `text`,
//! `content`, an LLM's `generations[0][0].text`, or the first string value)
//! and scores it in [0, 1]: 0 for no answer or a refusal ("I don't know",
//! "I cannot", ...), otherwise the answer's length over `target_chars`,
//! capped at 1. Returns one feedback under `key`.
//!
//! Config (all optional): `{"key": "answer_usefulness", "target_chars": 200,
//! "refusals": ["i don't know"]}`

use runhook_plugin::{Evaluator, Feedback, Value};

struct OutputScore;

const DEFAULT_REFUSALS: &[&str] = &["i don't know", "i do not know", "i cannot", "i can't", "as an ai"];

impl Evaluator for OutputScore {
    fn evaluate(run: &Value, config: &Value) -> Result<Vec<Feedback>, String> {
        let key = match &config["key"] {
            Value::Null => "answer_usefulness",
            Value::String(k) if !k.is_empty() => k,
            other => {
                return Err(format!("config.key must be a non-empty string, got {other}"));
            }
        };
        let target = match &config["target_chars"] {
            Value::Null => 200.0,
            v => v.as_f64().filter(|t| *t > 0.0).ok_or("config.target_chars must be a positive number")?,
        };
        let refusals: Vec<String> = match &config["refusals"] {
            Value::Array(r) => r.iter().filter_map(Value::as_str).map(str::to_lowercase).collect(),
            _ => DEFAULT_REFUSALS.iter().map(|s| s.to_string()).collect(),
        };
        let Some(answer) = answer_text(&run["outputs"]) else {
            return Ok(vec![Feedback::score(key, 0.0).with_comment("no answer in outputs")]);
        };
        let lower = answer.to_lowercase();
        if let Some(r) = refusals.iter().find(|r| lower.contains(r.as_str())) {
            return Ok(vec![Feedback::score(key, 0.0).with_comment(format!("refusal: {r:?}"))]);
        }
        let score = (answer.chars().count() as f64 / target).min(1.0);
        let score = (score * 1000.0).round() / 1000.0;
        Ok(vec![Feedback::score(key, score).with_comment(format!("{} chars", answer.chars().count()))])
    }
}

fn answer_text(outputs: &Value) -> Option<&str> {
    for field in ["output", "answer", "text", "content"] {
        if let Some(s) = outputs[field].as_str() {
            return Some(s);
        }
    }
    if let Some(s) = outputs["generations"][0][0]["text"].as_str() {
        return Some(s);
    }
    outputs.as_object()?.values().find_map(Value::as_str)
}

runhook_plugin::export!(OutputScore: evaluator);
