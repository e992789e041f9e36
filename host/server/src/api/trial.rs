//! `POST /runs/rules/validate`: try a rule before saving it.
//!
//! The body is `{"rule": {...}, "hours": 24, "max_runs": 20,
//! "max_candidates": 10000}`, where `rule` is what `POST /runs/rules`
//! takes; with `"rule_id"`, `rule` holds changes to that stored rule, as
//! a PATCH does. The rule is validated exactly as when it is saved (a 400
//! names the field), then run over the project's stored runs of the last
//! `hours` (see `rules::trial`). The answer shows the runs it would act
//! on, the payloads it would queue and the feedback its evaluator would
//! write. Nothing is sent or stored: not even a project named by
//! `session_name` is created (a trial of a project that does not exist is
//! a 400).

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use serde_json::{Map, Value, json};

use super::error::ApiError;
use super::rules::{definitions, overlay, rule_or_404};
use super::{AppState, body};
use crate::rules::pipeline::CycleError;
use crate::rules::trial::{self, TrialLimits, TrialPayloads};
use crate::select::SelectError;
use runhook_core::model::{RuleDefinition, Timestamp};
use runhook_store::SessionQuery;

/// The longest span a trial reads, in hours (30 days).
const MAX_HOURS: u64 = 720;
/// Most runs a trial reads.
const MAX_CANDIDATES: u64 = 100_000;
/// Most selected runs a trial acts on and returns.
const MAX_RUNS: u64 = 100;

pub(super) async fn validate(
    State(state): State<AppState>,
    headers: HeaderMap,
    b: Body,
) -> Result<Json<Value>, ApiError> {
    let bytes = body::read_json(&headers, b, state.limits).await?;
    let mut req = match body::json::<Value>(&bytes, "rule trial")? {
        Value::Object(map) => map,
        _ => return Err(ApiError::BadRequest("invalid rule trial: expected a JSON object".into())),
    };
    if let Some(k) =
        req.keys().find(|k| !["rule", "rule_id", "hours", "max_runs", "max_candidates"].contains(&k.as_str()))
    {
        return Err(ApiError::BadRequest(format!(
            "unknown field {k:?}: a trial takes rule, rule_id, hours, max_runs and max_candidates"
        )));
    }
    let hours = body::int_field(&req, "hours", 24, MAX_HOURS)?;
    let max_runs = body::int_field(&req, "max_runs", 20, MAX_RUNS)?;
    let max_candidates = body::int_field(&req, "max_candidates", 10_000, MAX_CANDIDATES)?;
    let rule = match req.remove("rule") {
        Some(Value::Object(map)) => map,
        None if req.contains_key("rule_id") => Map::new(),
        _ => return Err(ApiError::BadRequest("rule: expected the rule as a JSON object".into())),
    };
    let (mut definition, replaces) = match req.get("rule_id") {
        None | Some(Value::Null) => (RuleDefinition::from_map(rule).map_err(ApiError::BadRequest)?, None),
        Some(Value::String(id)) => {
            let stored = rule_or_404(&state, id).await?;
            (overlay(&stored, rule)?, Some(stored))
        }
        Some(other) => return Err(ApiError::BadRequest(format!("rule_id must be a rule id, got {other}"))),
    };
    // A trial creates nothing, so the project must exist.
    if definition.session_id.is_none()
        && let Some(name) = definition.session_name.as_deref().map(str::trim).filter(|n| !n.is_empty())
    {
        let q = SessionQuery { name: Some(name.to_string()), limit: 1, ..SessionQuery::default() };
        let found = state.store.list_sessions(&q).await?;
        let project = found.first().ok_or_else(|| {
            ApiError::BadRequest(format!("session_name: no project named {name:?} (a trial creates nothing)"))
        })?;
        definition.session_id = Some(project.id);
        definition.session_name = None;
    }
    let spec = definitions(&state).validate(definition, replaces.as_ref().map(|r| &r.spec)).await?;
    let until = Timestamp::now();
    let since = Timestamp::from_datetime(until.as_datetime() - chrono::Duration::hours(hours as i64));
    let limits = TrialLimits {
        since,
        max_candidates: max_candidates as usize,
        max_runs: max_runs as usize,
        budget: state.limits.request_timeout,
    };
    let payloads = TrialPayloads { large: state.large.as_deref() };
    let t = trial::try_rule(&state.store, &state.plugins, &spec, limits, payloads).await.map_err(trial_error)?;
    let payloads: Vec<Value> = t
        .payloads
        .iter()
        .map(|p| match &p.body {
            // A body that is JSON is shown as JSON; a transform may emit any text.
            Ok(text) => json!({"run_ids": p.run_ids, "body": serde_json::from_str::<Value>(text).unwrap_or_else(|_| Value::String(text.clone())), "error": null}),
            Err(e) => json!({"run_ids": p.run_ids, "body": null, "error": e}),
        })
        .collect();
    let feedback: Vec<Value> = t
        .feedback
        .iter()
        .map(|(run, r)| match r {
            Ok(items) => json!({"run_id": run, "feedback": items, "error": null}),
            Err(e) => json!({"run_id": run, "feedback": [], "error": e}),
        })
        .collect();
    Ok(Json(json!({
        "window": {"since": since.to_offset_string(), "until": until.to_offset_string()},
        "scanned": t.scanned,
        "complete": t.complete,
        "filtered": t.filtered,
        "matched": t.matched,
        "runs": t.runs.iter().map(|r| Value::Object(r.json.clone())).collect::<Vec<_>>(),
        "match_errors": t.match_errors.iter().map(|(run, e)| json!({"run_id": run, "error": e})).collect::<Vec<_>>(),
        "webhooks": spec.webhooks.len(),
        "payloads": payloads,
        "feedback": feedback,
        "annotation_queue": t.queued.as_ref().map(|(queue, runs)| json!({"queue_id": queue, "run_ids": runs})),
        "examples": t.examples.iter().map(super::datasets::example_json).collect::<Vec<_>>(),
        "group_by": spec.group_by,
        "threads": t.threads.iter().map(|t| json!({
            "thread_id": t.thread_id, "run_ids": t.run_ids, "start_time": t.span.0.to_offset_string(),
            "end_time": t.span.1.to_offset_string(), "idle_at": t.idle_at.to_offset_string(), "due": t.due,
        })).collect::<Vec<_>>(),
        "sampling_rate": spec.sampling_rate,
    })))
}

fn trial_error(e: CycleError) -> ApiError {
    match e {
        CycleError::Store(e) => e.into(),
        CycleError::Filter(e) => ApiError::BadRequest(e.to_string()),
        CycleError::Select(SelectError::Deadline(_)) => ApiError::Unprocessable(format!(
            "{e} (limits.request_timeout_ms): try fewer hours, a lower max_candidates or a cheaper filter"
        )),
        other => ApiError::Internal(Box::new(other)),
    }
}
