//! Transformer: redact sensitive keys from the runs' inputs and outputs.
//!
//! Every object key named in `keys` (compared case-insensitively, at any
//! depth inside `inputs` and `outputs` of every run) has its value replaced by
//! `replacement`. The rest of the payload is delivered unchanged.
//!
//! Config: `{"keys": ["api_key", "password"], "replacement": "[REDACTED]"}`
//! (`replacement` is optional).

use runhook_plugin::{Transformer, Value, log};

struct Redact;

impl Transformer for Redact {
    fn transform(mut payload: Value, config: &Value) -> Result<Value, String> {
        let keys: Vec<String> = match &config["keys"] {
            Value::Array(keys) => keys
                .iter()
                .map(|k| k.as_str().map(str::to_lowercase).ok_or("config.keys must hold strings"))
                .collect::<Result<_, _>>()?,
            other => {
                return Err(format!("config.keys must be a list of strings, got {other}"));
            }
        };
        let replacement = match &config["replacement"] {
            Value::Null => Value::from("[REDACTED]"),
            other => other.clone(),
        };
        let mut redacted = 0usize;
        if let Some(runs) = payload.get_mut("runs").and_then(Value::as_array_mut) {
            for run in runs {
                for field in ["inputs", "outputs"] {
                    if let Some(value) = run.get_mut(field) {
                        redacted += redact(value, &keys, &replacement);
                    }
                }
            }
        }
        log::debug(&format!("redacted {redacted} values"));
        Ok(payload)
    }
}

fn redact(value: &mut Value, keys: &[String], replacement: &Value) -> usize {
    match value {
        Value::Object(map) => map
            .iter_mut()
            .map(|(k, v)| {
                if keys.contains(&k.to_lowercase()) {
                    *v = replacement.clone();
                    1
                } else {
                    redact(v, keys, replacement)
                }
            })
            .sum(),
        Value::Array(items) => items.iter_mut().map(|v| redact(v, keys, replacement)).sum(),
        _ => 0,
    }
}

runhook_plugin::export!(Redact: transformer);
