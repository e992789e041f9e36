//! Datasets and their examples, as LangSmith's API has them: named sets of
//! input/output pairs, kept for evaluation and fine-tuning, often filled
//! from traced runs (an example's `source_run_id`).
//!
//! An example's splits (LangSmith's `split`: `"base"` unless given) are
//! kept beside its metadata and shown in it as `dataset_split`, as
//! LangSmith shows them.

use serde_json::Value;

use super::ids::{DatasetId, ExampleId, RunId};
use super::time::Timestamp;

/// The split an example is in when none is given.
pub const DEFAULT_SPLIT: &str = "base";

/// A dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    /// Its id.
    pub id: DatasetId,
    /// Its unique name.
    pub name: String,
    /// A description.
    pub description: Option<String>,
    /// LangSmith's data type: `kv` (the default), `llm` or `chat`.
    pub data_type: String,
    /// JSON schemas the inputs and outputs should follow (kept, not enforced).
    pub inputs_schema: Option<Value>,
    /// See `inputs_schema`.
    pub outputs_schema: Option<Value>,
    /// Free-form metadata.
    pub metadata: Option<Value>,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it or one of its examples last changed.
    pub modified_at: Timestamp,
    /// Its examples, counted when read.
    pub example_count: u64,
}

/// An example of a dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    /// Its id.
    pub id: ExampleId,
    /// Its dataset.
    pub dataset_id: DatasetId,
    /// The inputs (a JSON object).
    pub inputs: Value,
    /// The reference outputs, if any.
    pub outputs: Option<Value>,
    /// Free-form metadata (without `dataset_split`).
    pub metadata: Option<Value>,
    /// The splits it is in (at least one).
    pub splits: Vec<String>,
    /// The run it was made from.
    pub source_run_id: Option<RunId>,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it last changed.
    pub modified_at: Timestamp,
}

impl Example {
    /// The metadata as LangSmith shows it: with `dataset_split`.
    pub fn shown_metadata(&self) -> Value {
        let mut map = match &self.metadata {
            Some(Value::Object(m)) => m.clone(),
            _ => serde_json::Map::new(),
        };
        map.insert("dataset_split".into(), Value::from(self.splits.clone()));
        Value::Object(map)
    }
}

/// The splits a client gave (`"test"`, `["a", "b"]` or nothing), or why
/// they are not splits.
pub fn splits_from(v: Option<&Value>) -> Result<Vec<String>, String> {
    let names: Vec<String> = match v {
        None | Some(Value::Null) => vec![DEFAULT_SPLIT.into()],
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| i.as_str().map(str::to_string).ok_or_else(|| format!("split: expected names, found {i}")))
            .collect::<Result<_, _>>()?,
        Some(other) => return Err(format!("split: expected a name or a list of names, found {other}")),
    };
    for n in &names {
        if n.is_empty() || n.len() > 100 || n.contains(',') {
            return Err(format!("split {n:?}: a name of 1 to 100 characters without commas"));
        }
    }
    if names.is_empty() {
        return Ok(vec![DEFAULT_SPLIT.into()]);
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn splits_and_metadata() {
        assert_eq!(splits_from(None).unwrap(), ["base"]);
        assert_eq!(splits_from(Some(&json!("test"))).unwrap(), ["test"]);
        assert_eq!(splits_from(Some(&json!(["a", "b"]))).unwrap(), ["a", "b"]);
        assert!(splits_from(Some(&json!([1]))).is_err());
        assert!(splits_from(Some(&json!("a,b"))).is_err());
        let e = Example {
            id: ExampleId::new_v4(),
            dataset_id: DatasetId::new_v4(),
            inputs: json!({}),
            outputs: None,
            metadata: Some(json!({"k": 1})),
            splits: vec!["test".into()],
            source_run_id: None,
            created_at: Timestamp::now(),
            modified_at: Timestamp::now(),
        };
        assert_eq!(e.shown_metadata(), json!({"k": 1, "dataset_split": ["test"]}));
    }
}
