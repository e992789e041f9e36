//! Matcher: LLM runs that errored.
//!
//! Selects runs whose `run_type` is in `run_types` (default `["llm"]`) and
//! whose `error` is set. With `error_contains`, the error text must also
//! contain that substring (case-insensitive), e.g. `"rate limit"`.
//!
//! Config (all optional): `{"run_types": ["llm", "chain"], "error_contains": "timeout"}`

use runhook_plugin::{Matcher, Value};

struct LlmErrors;

impl Matcher for LlmErrors {
    fn matches(run: &Value, config: &Value) -> Result<bool, String> {
        let run_type = run["run_type"].as_str().unwrap_or_default();
        let type_ok = match &config["run_types"] {
            Value::Null => run_type == "llm",
            Value::Array(types) => types.iter().any(|t| t.as_str() == Some(run_type)),
            other => {
                return Err(format!("config.run_types must be a list of strings, got {other}"));
            }
        };
        let error = match &run["error"] {
            Value::Null => return Ok(false),
            Value::String(s) if s.is_empty() => return Ok(false),
            Value::String(s) => s.to_lowercase(),
            other => other.to_string().to_lowercase(),
        };
        let text_ok = match &config["error_contains"] {
            Value::Null => true,
            Value::String(needle) => error.contains(&needle.to_lowercase()),
            other => {
                return Err(format!("config.error_contains must be a string, got {other}"));
            }
        };
        Ok(type_ok && text_ok)
    }
}

runhook_plugin::export!(LlmErrors: matcher);
