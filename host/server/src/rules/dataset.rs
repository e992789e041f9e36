//! The dataset action: a run a rule acts on, as an example of the rule's
//! dataset (LangSmith's `add_to_dataset_id`).
//!
//! Input: the rendered run (inputs, outputs, its feedback). Output: the
//! example. Its id is derived from the rule and the run (a UUIDv5), so a
//! cycle repeated after a crash inserts nothing twice, whatever replica
//! repeats it. With `add_to_dataset_prefer_correction`, the newest
//! feedback `correction` on the run is the example's outputs (an object as
//! it is, anything else as `{"output": correction}`, the shape the doc's
//! receiver writes); otherwise the run's outputs.

use serde_json::{Value, json};
use uuid::Uuid;

use crate::payload::RenderedRun;
use runhook_core::model::dataset::DEFAULT_SPLIT;
use runhook_core::model::{DatasetId, Example, ExampleId, RuleId, Timestamp};

/// The example rule `rule` adds for `run` to `dataset`.
pub fn example_of(
    rule: RuleId,
    dataset: DatasetId,
    run: &RenderedRun,
    prefer_correction: bool,
    now: Timestamp,
) -> Example {
    let object = |key: &str| run.json.get(key).filter(|v| v.is_object()).cloned();
    let correction = prefer_correction
        .then(|| run.feedback.iter().filter(|f| f.correction.is_some()).max_by_key(|f| f.created_at))
        .flatten()
        .and_then(|f| f.correction.clone());
    let outputs = match correction {
        Some(c @ Value::Object(_)) => Some(c),
        Some(c) => Some(json!({"output": c})),
        None => object("outputs"),
    };
    Example {
        id: ExampleId(Uuid::new_v5(&rule.0, run.id.0.as_bytes())),
        dataset_id: dataset,
        inputs: object("inputs").unwrap_or_else(|| json!({})),
        outputs,
        metadata: Some(json!({"rule_id": rule})),
        splits: vec![DEFAULT_SPLIT.into()],
        source_run_id: Some(run.id),
        created_at: now,
        modified_at: now,
    }
}
