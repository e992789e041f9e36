//! The webhook payload, exactly as LangSmith's doc shows it.
//!
//! `{rule_id, start_time, end_time, runs, feedback_stats}`: the window
//! times in UTC with `+00:00`, each run with the keys of the doc's example
//! (timestamps without offset) plus `error` and `tags`, and
//! `feedback_stats` aggregated over the payload's runs. Plugins see the
//! full run object of the read API (a superset: it adds `parent_run_id`,
//! `latency` ...). A run's `app_path` is its page on runhook's dashboard.
//!
//! Layering: layer 2; imports `model`, `store`, `links`.

use std::borrow::Borrow;
use std::collections::HashMap;

use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};
use serde_json::{Map, Value};

use crate::links::Links;
use runhook_core::model::view::{RunContext, feedback_stats, run_json};
use runhook_core::model::{Feedback, RuleId, RunId, RunRecord, TenantId, Timestamp};
use runhook_store::{RunStore, StoreError, TreeNode};

/// The run keys of the doc's example payload, in its order, then `error`
/// and `tags`: what a receiver filters on most ("LLM call failed: ..."),
/// so it needs no second request (extra keys break no receiver written
/// against the doc).
pub const RUN_KEYS: [&str; 36] = [
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
    "error",
    "tags",
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

/// What rendering a batch of runs needs beyond the runs: their traces'
/// trees and their feedback.
#[derive(Debug, Default)]
pub struct Derived {
    nodes: Vec<TreeNode>,
    feedback: Vec<Feedback>,
}

impl Derived {
    /// Loads what `needs` asks for the runs `ids` of traces `traces` (one
    /// query each, at once): the runs themselves need not be read yet.
    pub async fn load(store: &dyn RunStore, ids: &[RunId], traces: &[RunId], needs: Needs) -> Result<Self, StoreError> {
        let mut traces = traces.to_vec();
        traces.sort_unstable();
        traces.dedup();
        let nodes = async { if needs.tree { store.trace_nodes(&traces).await } else { Ok(Vec::new()) } };
        let feedback = async { if needs.feedback { store.feedback_for_runs(ids).await } else { Ok(Vec::new()) } };
        let (nodes, feedback) = tokio::try_join!(nodes, feedback)?;
        Ok(Self { nodes, feedback })
    }
}

/// Renders runs with their derived fields, loading the trees and the
/// feedback `needs` asks for (one query each for the whole batch).
pub async fn render(store: &dyn RunStore, runs: &[RunRecord], needs: Needs) -> Result<Vec<RenderedRun>, StoreError> {
    let ids: Vec<RunId> = runs.iter().map(|r| r.id).collect();
    let traces: Vec<RunId> = runs.iter().map(|r| r.trace_id).collect();
    let derived = Derived::load(store, &ids, &traces, needs).await?;
    Ok(render_with(store.tenant_id(), runs, derived))
}

/// Renders runs with the derived fields loaded for them.
pub fn render_with(tenant: TenantId, runs: &[RunRecord], derived: Derived) -> Vec<RenderedRun> {
    let mut by_trace: HashMap<RunId, Vec<&TreeNode>> = HashMap::new();
    for n in &derived.nodes {
        if let Some(trace) = n.dotted_order.get(22..58).and_then(|s| s.parse::<RunId>().ok()) {
            by_trace.entry(trace).or_default().push(n);
        }
    }
    let mut feedback: HashMap<RunId, Vec<Feedback>> = HashMap::new();
    for f in derived.feedback {
        if let Some(run) = f.run_id {
            feedback.entry(run).or_default().push(f);
        }
    }
    runs.iter()
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
        .collect()
}

/// One POST's worth: its runs and its body.
#[derive(Debug, Clone)]
pub struct Payload {
    /// The runs it carries.
    pub run_ids: Vec<RunId>,
    /// The JSON body, as sent.
    pub body: String,
}

/// Large inputs and outputs by link, as LangSmith's doc describes: past
/// `max_bytes` of JSON, a run's `inputs` (or `outputs`) are null in the
/// payload and its `inputs_s3_urls` (or `outputs_s3_urls`) are
/// `{"ROOT": {"presigned_url": "/runs/{id}/io/inputs?expires=...&sig=..."}}`,
/// a link relative to the server, like the SDK's attachment URLs. The
/// payload stays small however large the runs are.
#[derive(Debug)]
pub struct LargeFields {
    /// The most bytes of JSON a field carries inline.
    pub max_bytes: usize,
    /// How long a link works, in seconds (past retries and redeliveries).
    pub lifetime_secs: i64,
    /// Signs the links.
    pub links: Links,
}

impl LargeFields {
    /// The link to field `field` (`inputs` or `outputs`) of run `run`.
    pub fn link(&self, run: &str, field: &str) -> String {
        self.links.sign(&io_path(run, field), self.lifetime_secs)
    }
}

/// The path a run's large field is served at (see [`LargeFields`]).
pub fn io_path(run: &str, field: &str) -> String {
    format!("/runs/{run}/io/{field}")
}

/// The run object as the webhook carries it (the doc's keys only),
/// written straight from the full object without copying it.
struct WebhookRun<'a>(&'a Map<String, Value>, Option<&'a LargeFields>);

/// The bytes `v` serialises to (compact, as `serde_json` writes it), or
/// `None` once past `budget`: a walk that copies nothing and stops early,
/// so a field is serialised once, into the payload, and a huge one is
/// measured only up to the cap.
fn json_len(v: &Value, budget: usize) -> Option<usize> {
    fn walk(v: &Value, left: &mut usize) -> Option<()> {
        let take = |left: &mut usize, n: usize| left.checked_sub(n).map(|l| *left = l);
        match v {
            Value::Null => take(left, 4),
            Value::Bool(b) => take(left, if *b { 4 } else { 5 }),
            Value::Number(n) => {
                let mut digits = Counter(0);
                let _ = std::io::Write::write_fmt(&mut digits, format_args!("{n}"));
                take(left, digits.0)
            }
            Value::String(s) => take(left, string_len(s)),
            Value::Array(items) => {
                take(left, 2 + items.len().saturating_sub(1))?;
                items.iter().try_for_each(|i| walk(i, left))
            }
            Value::Object(map) => {
                take(left, 2 + map.len().saturating_sub(1))?;
                map.iter().try_for_each(|(k, v)| {
                    take(left, string_len(k) + 1)?;
                    walk(v, left)
                })
            }
        }
    }
    let mut left = budget;
    walk(v, &mut left).map(|()| budget - left)
}

/// A JSON string's length with its quotes and escapes, as `serde_json`
/// escapes: `"` and `\\` and the control characters (two bytes for the
/// five with short forms, six for the rest); nothing else.
fn string_len(s: &str) -> usize {
    s.len() + 2 + s.bytes().map(|b| usize::from(ESCAPE_EXTRA[usize::from(b)])).sum::<usize>()
}

/// The bytes escaping adds to each byte: one pass with no branch.
static ESCAPE_EXTRA: [u8; 256] = {
    let mut t = [0; 256];
    let mut b = 0;
    while b < 0x20 {
        t[b] = 5;
        b += 1;
    }
    t[b'"' as usize] = 1;
    t[b'\\' as usize] = 1;
    t[b'\n' as usize] = 1;
    t[b'\r' as usize] = 1;
    t[b'\t' as usize] = 1;
    t[0x08] = 1;
    t[0x0c] = 1;
    t
};

/// Counts the bytes written to it, keeping none.
struct Counter(usize);

impl std::io::Write for Counter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Serialize for WebhookRun<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        // A large field's link, written in place of its `*_s3_urls`.
        let mut linked: Option<(&str, String)> = None;
        for key in RUN_KEYS {
            let Some(value) = self.0.get(key) else { continue };
            match (key, self.1) {
                ("inputs" | "outputs", Some(large)) if !value.is_null() => {
                    if json_len(value, large.max_bytes).is_some() {
                        map.serialize_entry(key, value)?;
                    } else {
                        let id = self.0.get("id").and_then(Value::as_str).unwrap_or_default();
                        linked = Some((key, large.link(id, key)));
                        map.serialize_entry(key, &Value::Null)?;
                    }
                }
                ("inputs_s3_urls" | "outputs_s3_urls", _) => match linked.take() {
                    Some((field, url)) if key.starts_with(field) => {
                        map.serialize_entry(key, &serde_json::json!({"ROOT": {"presigned_url": url}}))?;
                    }
                    _ => map.serialize_entry(key, value)?,
                },
                _ => map.serialize_entry(key, value)?,
            }
        }
        map.end()
    }
}

/// A payload's body, borrowing its runs.
#[derive(Serialize)]
struct Body<'a> {
    rule_id: RuleId,
    start_time: String,
    end_time: String,
    runs: Vec<WebhookRun<'a>>,
    feedback_stats: Map<String, Value>,
    /// A thread rule's threads (absent from other rules' payloads).
    #[serde(skip_serializing_if = "Option::is_none")]
    threads: Option<Vec<ThreadEntry<'a>>>,
}

/// A thread in a thread rule's payload: its runs by id (the run objects
/// are in `runs`, once), and the span from its first run's start to its
/// last run's end.
#[derive(Serialize)]
struct ThreadEntry<'a> {
    thread_id: &'a str,
    run_ids: Vec<RunId>,
    start_time: String,
    end_time: String,
}

/// A thread a thread rule acts on: its runs of this idle period, in order,
/// and its span.
#[derive(Debug, Clone)]
pub struct ThreadPart<R> {
    /// The thread id.
    pub thread_id: String,
    /// Its runs, earliest first.
    pub runs: Vec<R>,
    /// Its first run's start.
    pub start: Timestamp,
    /// Its last run's end.
    pub end: Timestamp,
}

/// A thread rule's payloads: whole threads, as many in each as fit in
/// `max_runs` runs (a thread with more goes alone, never split), with
/// `threads` beside the usual keys and every run in `runs`, thread by
/// thread.
pub fn thread_payloads<R: Borrow<RenderedRun>>(
    rule: RuleId,
    start: Timestamp,
    end: Timestamp,
    threads: &[ThreadPart<R>],
    max_runs: usize,
    large: Option<&LargeFields>,
) -> Vec<Payload> {
    let mut groups: Vec<&[ThreadPart<R>]> = Vec::new();
    let (mut from, mut runs) = (0, 0);
    for (i, t) in threads.iter().enumerate() {
        if i > from && runs + t.runs.len() > max_runs {
            groups.push(&threads[from..i]);
            (from, runs) = (i, 0);
        }
        runs += t.runs.len();
    }
    if from < threads.len() {
        groups.push(&threads[from..]);
    }
    groups
        .into_iter()
        .map(|group| {
            let all: Vec<&RenderedRun> = group.iter().flat_map(|t| t.runs.iter().map(Borrow::borrow)).collect();
            let entries = group
                .iter()
                .map(|t| ThreadEntry {
                    thread_id: &t.thread_id,
                    run_ids: t.runs.iter().map(|r| r.borrow().id).collect(),
                    start_time: t.start.to_offset_string(),
                    end_time: t.end.to_offset_string(),
                })
                .collect();
            body(rule, start, end, &all, large, Some(entries))
        })
        .collect()
}

/// One payload of `runs`.
fn body<R: Borrow<RenderedRun>>(
    rule: RuleId,
    start: Timestamp,
    end: Timestamp,
    runs: &[R],
    large: Option<&LargeFields>,
    threads: Option<Vec<ThreadEntry<'_>>>,
) -> Payload {
    let fb: Vec<&Feedback> = runs.iter().flat_map(|r| r.borrow().feedback.iter()).collect();
    let body = Body {
        rule_id: rule,
        start_time: start.to_offset_string(),
        end_time: end.to_offset_string(),
        runs: runs.iter().map(|r| WebhookRun(&r.borrow().json, large)).collect(),
        feedback_stats: feedback_stats(&fb),
        threads,
    };
    Payload {
        run_ids: runs.iter().map(|r| r.borrow().id).collect(),
        // Maps of JSON values and strings always serialise.
        body: serde_json::to_string(&body).unwrap_or_else(|_| "{}".into()),
    }
}

/// Splits a window's runs into payloads of at most `max_runs` runs, with
/// large inputs and outputs by link when `large` is given.
pub fn payloads<R: Borrow<RenderedRun>>(
    rule: RuleId,
    start: Timestamp,
    end: Timestamp,
    runs: &[R],
    max_runs: usize,
    large: Option<&LargeFields>,
) -> Vec<Payload> {
    runs.chunks(max_runs.max(1)).map(|chunk| body(rule, start, end, chunk, large, None)).collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::json_len;

    #[test]
    fn json_len_is_what_serde_json_writes() {
        let values = [
            json!(null),
            json!(true),
            json!(false),
            json!(0),
            json!(-17),
            json!(u64::MAX),
            json!(1.5e-7),
            json!(3.0),
            json!("plain"),
            json!("quote \" backslash \\ newline \n tab \t bell \u{7} nul \u{0} é 猫 😀 </script>"),
            json!([]),
            json!({}),
            json!([1, "two", [3, {"four": null}]]),
            json!({"messages": [{"role": "user", "content": "hi\r\n"}], "n": 2, "ok": false, "k\"ey": {}}),
        ];
        for v in values {
            let written = serde_json::to_string(&v).unwrap().len();
            assert_eq!(json_len(&v, usize::MAX), Some(written), "{v}");
            assert_eq!(json_len(&v, written), Some(written), "{v}");
            assert_eq!(json_len(&v, written - 1), None, "{v}");
        }
    }
}
