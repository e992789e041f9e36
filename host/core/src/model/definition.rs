//! A rule as a client writes it: the body of `POST /runs/rules`
//! (LangSmith's schema plus runhook's fields), the `[[rules]]` of the
//! config file. Every field is optional here; the rules module checks a
//! definition in full and turns it into a [`RuleSpec`](super::RuleSpec).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::ids::{DatasetId, QueueId, SessionId};
use super::plugin::RulePlugins;
use super::rule::{GroupBy, RuleAlert, WebhookTarget};
use super::time::Timestamp;

/// LangSmith rule fields for actions runhook does not perform; accepted
/// when empty, refused otherwise.
const UNSUPPORTED: &[&str] = &[
    "evaluators",
    "code_evaluators",
    "extend_only",
    "use_corrections_dataset",
    "num_few_shot_examples",
    "evaluator_version",
    "evaluator_id",
    "transient",
    "create_alignment_queue",
    "include_extended_stats",
    "spend_limit",
    "tracer_session_issue_id",
    "dataset_id",
    "thread_filter",
];

/// The fields of a definition (and `project_name`, an alias).
const KNOWN: &[&str] = &[
    "display_name",
    "session_id",
    "session_name",
    "project_name",
    "filter",
    "trace_filter",
    "tree_filter",
    "sampling_rate",
    "is_enabled",
    "backfill_from",
    "webhooks",
    "alerts",
    "plugins",
    "interval_seconds",
    "wake_on_ingest",
    "batch_ms",
    "max_runs_per_payload",
    "signing_secret",
    "add_to_dataset_id",
    "add_to_dataset_prefer_correction",
    "add_to_annotation_queue_id",
    "group_by",
    "thread_idle_seconds",
];

/// A rule as written; `None` means not given.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct RuleDefinition {
    /// The rule's name.
    pub display_name: Option<String>,
    /// The project it watches, by id.
    pub session_id: Option<SessionId>,
    /// The project it watches, by name (created when missing).
    #[serde(alias = "project_name")]
    pub session_name: Option<String>,
    /// LangSmith filter on the run.
    pub filter: Option<String>,
    /// LangSmith filter on the run's root.
    pub trace_filter: Option<String>,
    /// LangSmith filter on any run of the trace.
    pub tree_filter: Option<String>,
    /// Share of matching runs acted on, 0..1.
    pub sampling_rate: Option<f64>,
    /// Whether it runs.
    pub is_enabled: Option<bool>,
    /// Also act on runs from before the rule, started since then.
    pub backfill_from: Option<Timestamp>,
    /// Where matches are delivered.
    pub webhooks: Option<Vec<WebhookTarget>>,
    /// LangSmith's PagerDuty alert action.
    pub alerts: Option<Vec<RuleAlert>>,
    /// Match, transform and evaluate plugins.
    pub plugins: Option<RulePlugins>,
    /// The longest a run waits for a cycle, in seconds.
    pub interval_seconds: Option<u64>,
    /// Whether ingest wakes the rule (false: poll every interval).
    pub wake_on_ingest: Option<bool>,
    /// Milliseconds a woken rule collects runs before its cycle.
    pub batch_ms: Option<u64>,
    /// Runs per webhook POST at most.
    pub max_runs_per_payload: Option<usize>,
    /// Standard Webhooks signing secret (`whsec_...`).
    pub signing_secret: Option<String>,
    /// The annotation queue each run acted on is added to.
    pub add_to_annotation_queue_id: Option<QueueId>,
    /// The dataset each run acted on is added to, as an example.
    pub add_to_dataset_id: Option<DatasetId>,
    /// Whether a feedback's correction is the example's outputs.
    pub add_to_dataset_prefer_correction: Option<bool>,
    /// `"thread_id"`: a thread rule.
    pub group_by: Option<GroupBy>,
    /// A thread rule's idle time, in seconds.
    pub thread_idle_seconds: Option<u64>,
}

impl RuleDefinition {
    /// Reads a definition from a JSON object: the keys are checked first
    /// (LangSmith's unsupported actions must be empty, nothing unknown may
    /// appear), then the values; an error names the field.
    pub fn from_map(map: Map<String, Value>) -> Result<Self, String> {
        check_keys(&map)?;
        serde_path_to_error::deserialize(Value::Object(map)).map_err(|e| {
            let path = e.path().to_string();
            let at = if path == "." { String::new() } else { format!(" at {path}") };
            format!("invalid rule{at}: {}", e.into_inner())
        })
    }
}

/// Checks the keys of a rule body: LangSmith's unsupported actions must be
/// empty, and nothing unknown may appear.
pub fn check_keys(map: &Map<String, Value>) -> Result<(), String> {
    for (k, v) in map {
        if KNOWN.contains(&k.as_str()) {
            continue;
        }
        let empty = matches!(v, Value::Null | Value::Bool(false))
            || v.as_array().is_some_and(Vec::is_empty)
            || v.as_object().is_some_and(Map::is_empty);
        if UNSUPPORTED.contains(&k.as_str()) {
            if !empty {
                return Err(format!(
                    "{k} is not supported by runhook; rules act through webhooks and plugins (plugins.evaluate for evaluators)"
                ));
            }
        } else {
            return Err(format!("unknown rule field {k:?}"));
        }
    }
    Ok(())
}
