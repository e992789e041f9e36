//! The webhook payload, exactly as LangSmith's doc shows it.
//!
//! `{rule_id, start_time, end_time, runs, feedback_stats}`: the window
//! times in UTC with `+00:00`, each run with the keys of the doc's example
//! (timestamps without offset), and `feedback_stats` aggregated over the
//! payload's runs. Plugins see the full run object of the read API (a
//! superset: it adds `error`, `tags`, `parent_run_id`, `latency` ...).
//!
//! Layering: layer 2; imports `model`, `store`.

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use runhook_core::model::view::{RunContext, feedback_stats, run_json};
use runhook_core::model::{Feedback, RuleId, RunId, RunRecord, Timestamp};
use runhook_store::{RunStore, StoreError, TreeNode};

/// The run keys of the doc's example payload, in its order. (`error` is not
/// among them; receivers read it with `read_run`, as the doc suggests.)
pub const RUN_KEYS: [&str; 34] = [
    "status",
    "is_root",
    "trace_id",
    "dotted_order",
    "run_type",
    "modified_at",
    "tenant_id",
    "end_time",
    "name",
    "start_time",
    "id",
    "session_id",
    "parent_run_ids",
    "child_run_ids",
    "direct_child_run_ids",
    "total_tokens",
    "completion_tokens",
    "prompt_tokens",
    "total_cost",
    "completion_cost",
    "prompt_cost",
    "first_token_time",
    "app_path",
    "in_dataset",
    "last_queued_at",
    "inputs",
    "inputs_s3_urls",
    "outputs",
    "outputs_s3_urls",
    "extra",
    "events",
    "feedback_stats",
    "serialized",
    "share_token",
];

/// Runs rendered for payloads and plugins, with their feedback.
#[derive(Debug, Clone)]
pub struct RenderedRun {
    /// The run's id.
    pub id: RunId,
    /// The full run object, as `GET /runs/{id}` returns it: what plugins
    /// see (a superset of the webhook's run object).
    pub json: Map<String, Value>,
    /// Its feedback (for the payload's `feedback_stats`).
    pub feedback: Vec<Feedback>,
}

/// Which derived fields [`render`] loads; each costs one query per batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Needs {
    /// `child_run_ids` and `direct_child_run_ids` (the trace trees).
    pub tree: bool,
    /// `feedback_stats` (the runs' feedback).
    pub feedback: bool,
}

impl Needs {
    /// Everything: what webhooks and plugins get.
    pub const ALL: Needs = Needs { tree: true, feedback: true };
}

/// A run object as JSON text (for plugins and logs).
pub fn json_text(run: &Map<String, Value>) -> String {
    // A map of JSON values always serialises.
    serde_json::to_string(run).unwrap_or_else(|_| "{}".into())
}

/// Renders runs with their derived fields, loading the trees and the
/// feedback `needs` asks for (one query each for the whole batch).
pub async fn render(store: &dyn RunStore, runs: &[RunRecord], needs: Needs) -> Result<Vec<RenderedRun>, StoreError> {
    let mut traces: Vec<RunId> = runs.iter().map(|r| r.trace_id).collect();
    traces.sort_unstable();
    traces.dedup();
    let nodes = if needs.tree { store.trace_nodes(&traces).await? } else { Vec::new() };
    let mut by_trace: HashMap<RunId, Vec<&TreeNode>> = HashMap::new();
    for n in &nodes {
        if let Some(trace) = n.dotted_order.get(22..58).and_then(|s| s.parse::<RunId>().ok()) {
            by_trace.entry(trace).or_default().push(n);
        }
    }
    let ids: Vec<RunId> = runs.iter().map(|r| r.id).collect();
    let mut feedback: HashMap<RunId, Vec<Feedback>> = HashMap::new();
    let all_feedback = if needs.feedback { store.feedback_for_runs(&ids).await? } else { Vec::new() };
    for f in all_feedback {
        if let Some(run) = f.run_id {
            feedback.entry(run).or_default().push(f);
        }
    }
    let tenant = store.tenant_id();
    Ok(runs
        .iter()
        .map(|run| {
            let prefix = format!("{}.", run.dotted_order);
            let tree = by_trace.get(&run.trace_id).map(Vec::as_slice).unwrap_or(&[]);
            let mut below: Vec<&&TreeNode> = tree.iter().filter(|n| n.dotted_order.starts_with(&prefix)).collect();
            below.sort_by(|a, b| a.dotted_order.cmp(&b.dotted_order));
            let fb = feedback.remove(&run.id).unwrap_or_default();
            let ctx = RunContext {
                tenant: Some(tenant),
                child_run_ids: Some(below.iter().map(|n| n.id).collect()),
                direct_child_run_ids: Some(
                    below.iter().filter(|n| n.parent_run_id == Some(run.id)).map(|n| n.id).collect(),
                ),
                feedback: fb.iter().collect(),
            };
            RenderedRun { id: run.id, json: run_json(run, &ctx), feedback: fb }
        })
        .collect())
}

/// One POST's worth: its runs and its body.
#[derive(Debug, Clone)]
pub struct Payload {
    /// The runs it carries.
    pub run_ids: Vec<RunId>,
    /// The JSON body.
    pub body: Value,
}

/// The run object as the webhook carries it: the doc's keys only.
pub fn webhook_run(full: &Map<String, Value>) -> Map<String, Value> {
    RUN_KEYS.iter().filter_map(|k| full.get(*k).map(|v| (k.to_string(), v.clone()))).collect()
}

/// Splits a window's runs into payloads of at most `max_runs` runs.
pub fn payloads(rule: RuleId, start: Timestamp, end: Timestamp, runs: &[RenderedRun], max_runs: usize) -> Vec<Payload> {
    runs.chunks(max_runs.max(1))
        .map(|chunk| {
            let fb: Vec<&Feedback> = chunk.iter().flat_map(|r| r.feedback.iter()).collect();
            Payload {
                run_ids: chunk.iter().map(|r| r.id).collect(),
                body: json!({
                    "rule_id": rule,
                    "start_time": start.to_offset_string(),
                    "end_time": end.to_offset_string(),
                    "runs": chunk.iter().map(|r| Value::Object(webhook_run(&r.json))).collect::<Vec<_>>(),
                    "feedback_stats": Value::Object(feedback_stats(&fb)),
                }),
            }
        })
        .collect()
}
