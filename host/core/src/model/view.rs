//! Runs as readers see them: the JSON object of `GET /runs/{id}`,
//! `/runs/query` and the webhook payload, with LangSmith's derived fields,
//! and `feedback_stats`.
//!
//! Timestamps are UTC without an offset, as LangSmith's run objects have
//! them. Token counts default to 0 and costs to null, as in LangSmith.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::feedback::Feedback;
use super::ids::{RunId, TenantId};
use super::run::RunRecord;

/// What a run's JSON needs beyond the stored row.
#[derive(Debug, Clone, Default)]
pub struct RunContext<'a> {
    /// The instance's tenant id.
    pub tenant: Option<TenantId>,
    /// All descendants, when known (`None` renders as null).
    pub child_run_ids: Option<Vec<RunId>>,
    /// Direct children, when known.
    pub direct_child_run_ids: Option<Vec<RunId>>,
    /// The run's feedback.
    pub feedback: Vec<&'a Feedback>,
}

/// The full JSON object of a run.
pub fn run_json(run: &RunRecord, ctx: &RunContext<'_>) -> Map<String, Value> {
    let tenant = ctx.tenant.map(|t| t.to_string());
    // Where a person looks at the run: the dashboard's run page on this
    // server (LangSmith's is a path of its web app; both are relative to
    // the endpoint a receiver already knows).
    let app_path = format!("/ui/runs/{}", run.id);
    let ids = |v: &Option<Vec<RunId>>| match v {
        Some(v) if !v.is_empty() => json!(v),
        _ => Value::Null,
    };

    let stats = feedback_stats(&ctx.feedback);
    let json = json!({
        "id": run.id,
        "name": run.name,
        "run_type": run.run_type,
        "status": run.status(),
        "is_root": run.is_root(),
        "trace_id": run.trace_id,
        "dotted_order": run.dotted_order,
        "parent_run_id": run.parent_run_id,
        "parent_run_ids": run.parent_run_ids(),
        "child_run_ids": ids(&ctx.child_run_ids),
        "direct_child_run_ids": ids(&ctx.direct_child_run_ids),
        "session_id": run.session_id,
        "tenant_id": tenant,
        "start_time": run.start_time,
        "end_time": run.end_time,
        "modified_at": run.modified_at,
        "latency": run.latency(),
        "error": run.error,
        "inputs": run.inputs,
        "outputs": run.outputs,
        "extra": run.extra,
        "events": run.events,
        "serialized": run.serialized,
        "tags": run.tags,
        "reference_example_id": run.reference_example_id,
        "thread_id": run.thread_id,
        "total_tokens": run.total_tokens.unwrap_or(0),
        "prompt_tokens": run.prompt_tokens.unwrap_or(0),
        "completion_tokens": run.completion_tokens.unwrap_or(0),
        "total_cost": run.total_cost,
        "prompt_cost": run.prompt_cost,
        "completion_cost": run.completion_cost,
        "first_token_time": run.first_token_time,
        "feedback_stats": if stats.is_empty() { Value::Null } else { Value::Object(stats) },
        "app_path": app_path,
        "execution_order": 1,
        "in_dataset": false,
        "last_queued_at": null,
        "share_token": null,
        "inputs_s3_urls": null,
        "outputs_s3_urls": null,
        // Attachments need signed URLs; the API fills this in when asked.
        "s3_urls": null,
    });
    match json {
        Value::Object(map) => map,
        _ => Map::new(), // `json!({..})` is always an object
    }
}

/// The `s3_urls` field: `{"attachment.<name>": {presigned_url, mime_type}}`
/// for `(name, mime, url)` attachments, or null when there are none.
pub fn s3_urls(attachments: &[(String, String, String)]) -> Value {
    if attachments.is_empty() {
        return Value::Null;
    }
    attachments
        .iter()
        .map(|(name, mime, url)| (format!("attachment.{name}"), json!({"presigned_url": url, "mime_type": mime})))
        .collect::<Map<String, Value>>()
        .into()
}

/// Aggregates feedback per key, in the webhook's v1 shape: `n` counts
/// numeric scores, `avg` is their mean (null when none), `values` counts
/// categorical (string) values, and `show_feedback_arrow` is true when an
/// evaluator (source `model` or `auto_eval`) wrote any of it.
pub fn feedback_stats(feedback: &[&Feedback]) -> Map<String, Value> {
    #[derive(Default)]
    struct Acc {
        n: u64,
        sum: f64,
        values: BTreeMap<String, u64>,
        arrow: bool,
    }
    let mut by_key: BTreeMap<&str, Acc> = BTreeMap::new();
    for f in feedback {
        let acc = by_key.entry(&f.key).or_default();
        if let Some(score) = f.score {
            acc.n += 1;
            acc.sum += score;
        }
        if let Some(Value::String(v)) = &f.value {
            *acc.values.entry(v.clone()).or_default() += 1;
        }
        acc.arrow |= matches!(f.feedback_source.kind.as_str(), "model" | "auto_eval");
    }
    by_key
        .into_iter()
        .map(|(key, a)| {
            let avg = if a.n > 0 { json!(a.sum / a.n as f64) } else { Value::Null };
            (key.to_string(), json!({"n": a.n, "avg": avg, "show_feedback_arrow": a.arrow, "values": a.values}))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{FeedbackId, FeedbackSource, Timestamp};

    fn fb(key: &str, score: Option<f64>, value: Option<&str>, source: &str) -> Feedback {
        Feedback {
            id: FeedbackId::new_v4(),
            run_id: Some(RunId::new_v4()),
            trace_id: None,
            session_id: None,
            key: key.into(),
            score,
            value: value.map(|v| json!(v)),
            comment: None,
            correction: None,
            feedback_source: FeedbackSource { kind: source.into(), metadata: None, user_id: None },
            extra: None,
            created_at: Timestamp::now(),
            modified_at: Timestamp::now(),
        }
    }

    #[test]
    fn stats_follow_the_webhook_doc_example() {
        let all = [
            fb("about_langchain", Some(0.0), None, "model"),
            fb("category", None, Some("CONCEPTUAL"), "model"),
            fb("user_score", Some(0.0), None, "api"),
            fb("user_score", Some(1.0), None, "app"),
        ];
        let refs: Vec<&Feedback> = all.iter().collect();
        let stats = Value::Object(feedback_stats(&refs));
        assert_eq!(stats["about_langchain"], json!({"n": 1, "avg": 0.0, "show_feedback_arrow": true, "values": {}}));
        assert_eq!(
            stats["category"],
            json!({"n": 0, "avg": null, "show_feedback_arrow": true, "values": {"CONCEPTUAL": 1}})
        );
        assert_eq!(stats["user_score"], json!({"n": 2, "avg": 0.5, "show_feedback_arrow": false, "values": {}}));
    }
}
