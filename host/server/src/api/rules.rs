//! The rules API: `/runs/rules` (LangSmith's schema plus runhook's fields).
//!
//! Every create and patch is validated in full before it is stored, by the
//! rules module's [`Definitions`] (shared with the config file's rules): a
//! 400 names the field and the problem. Changes reach the scheduler at
//! once, without a restart.
//! A rule's view carries its last 24 hours (`last_24h`: cycles, runs seen
//! and matched, deliveries by outcome) and `next_cycle_by`, the latest its
//! next cycle runs (a wake-up on ingest comes sooner).
//! Responses mask webhook query values and never return header values or
//! the signing secret.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value, json};

use super::error::ApiError;
use super::webhook_view;
use super::{AppState, body, path_id, query_offset, query_pairs, query_usize};
use crate::rules::definition::{DefinitionError, Definitions};
use runhook_core::model::definition::check_keys;
use runhook_core::model::{Rule, RuleDefinition, RuleId, RunId, SessionId, Timestamp};
use runhook_store::rules::log_json;
use runhook_store::{Announcement, CycleSummary, RuleLogCursor, RuleStats};

/// The checks a rule definition goes through, over the app's state.
pub(crate) fn definitions(state: &AppState) -> Definitions<'_> {
    Definitions { store: state.store.as_ref(), plugins: &state.plugins, targets: &state.targets }
}

impl From<DefinitionError> for ApiError {
    fn from(e: DefinitionError) -> Self {
        match e {
            DefinitionError::Invalid(message) => ApiError::BadRequest(message),
            DefinitionError::Store(e) => e.into(),
        }
    }
}

/// What every rule, or `rule`, did in the last 24 hours (the dashboard's rules list).
async fn last_day(state: &AppState, rule: Option<RuleId>) -> Result<Vec<RuleStats>, ApiError> {
    let since = Timestamp::from_datetime(Timestamp::now().as_datetime() - chrono::Duration::hours(24));
    Ok(state.store.rule_stats(since, rule).await?)
}

fn stats_json(rule: RuleId, stats: &[RuleStats]) -> Value {
    let s = stats.iter().find(|s| s.rule_id == rule).cloned().unwrap_or_else(|| RuleStats::none(rule));
    json!({"cycles": s.cycles, "failed_cycles": s.failed_cycles, "runs_seen": s.seen, "runs_matched": s.matched,
           "deliveries_delivered": s.delivered, "deliveries_failed": s.failed, "deliveries_pending": s.pending})
}

async fn view(state: &AppState, rule: &Rule) -> Result<Value, ApiError> {
    view_with(state, rule, &last_day(state, Some(rule.id)).await?).await
}

/// A rule as the API shows it, with its last 24 hours from `stats`.
async fn view_with(state: &AppState, rule: &Rule, stats: &[RuleStats]) -> Result<Value, ApiError> {
    let s = &rule.spec;
    let session = state.store.get_session(s.session_id).await?;
    let queue = match s.add_to_annotation_queue_id {
        Some(id) => state.store.get_queue(id).await?,
        None => None,
    };
    let dataset = match s.add_to_dataset_id {
        Some(id) => state.store.get_dataset(id).await?,
        None => None,
    };
    let webhooks: Vec<Value> = s.webhooks.iter().map(webhook_view).collect();
    let last = state.store.rule_cycles(rule.id, 1).await?.into_iter().next();
    // A rule woken by ingest runs sooner; its interval is the latest.
    let next_cycle_by = last.as_ref().filter(|_| s.is_enabled).map(|c| {
        Timestamp::from_datetime(c.window_end.as_datetime() + chrono::Duration::seconds(s.interval_seconds as i64))
            .to_offset_string()
    });
    let last_cycle = last.as_ref().map(cycle_json);
    Ok(json!({
        "id": rule.id,
        "tenant_id": state.store.tenant_id(),
        "display_name": s.display_name,
        "session_id": s.session_id,
        "session_name": session.map(|x| x.name),
        "dataset_id": null,
        "dataset_name": null,
        "filter": s.filter,
        "trace_filter": s.trace_filter,
        "tree_filter": s.tree_filter,
        "sampling_rate": s.sampling_rate,
        "is_enabled": s.is_enabled,
        "backfill_from": s.backfill_from,
        "webhooks": webhooks,
        "alerts": s.alerts.iter().map(|a| json!({
            "type": a.kind, "routing_key": "***", "summary": a.summary, "severity": a.severity,
        })).collect::<Vec<_>>(),
        "plugins": s.plugins,
        "interval_seconds": s.interval_seconds,
        "wake_on_ingest": s.wake_on_ingest,
        "batch_ms": s.batch_ms,
        "max_runs_per_payload": s.max_runs_per_payload,
        "has_signing_secret": s.signing_secret.is_some(),
        // A replaced secret still signing beside the new one, until then.
        "retired_signing_secret_until": s.retired_signing_secret.as_ref().map(|r| r.until.to_offset_string()),
        "evaluators": null,
        "code_evaluators": null,
        "add_to_annotation_queue_id": s.add_to_annotation_queue_id,
        "add_to_annotation_queue_name": queue.map(|q| q.name),
        "add_to_dataset_id": s.add_to_dataset_id,
        "add_to_dataset_name": dataset.map(|d| d.name),
        "add_to_dataset_prefer_correction": s.add_to_dataset_prefer_correction,
        "group_by": s.group_by,
        "thread_idle_seconds": s.group_by.map(|_| s.thread_idle_seconds),
        "evaluator_version": 1,
        "created_at": rule.created_at,
        "updated_at": rule.updated_at,
        "last_cycle": last_cycle,
        "next_cycle_by": next_cycle_by,
        "last_24h": stats_json(rule.id, stats),
    }))
}

async fn body_map(state: &AppState, headers: &HeaderMap, b: Body) -> Result<Map<String, Value>, ApiError> {
    let bytes = body::read_json(headers, b, state.limits).await?;
    match body::json::<Value>(&bytes, "rule")? {
        Value::Object(map) => Ok(map),
        _ => Err(ApiError::BadRequest("invalid rule: expected a JSON object".into())),
    }
}

pub(super) async fn rule_or_404(state: &AppState, raw: &str) -> Result<Rule, ApiError> {
    let id: RuleId = path_id("rule id", raw)?;
    state.store.get_rule(id).await?.ok_or_else(|| ApiError::NotFound(format!("rule {id} not found")))
}

pub(super) async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    b: Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let map = body_map(&state, &headers, b).await?;
    let definition = RuleDefinition::from_map(map).map_err(ApiError::BadRequest)?;
    let spec = definitions(&state).validate(definition, None).await?;
    let rule = state.store.create_rule(RuleId::new_v4(), &spec).await?;
    super::announce(&state, Announcement::RulesChanged).await;
    Ok((StatusCode::OK, Json(view(&state, &rule).await?)))
}

pub(super) async fn list(State(state): State<AppState>, RawQuery(raw): RawQuery) -> Result<Json<Value>, ApiError> {
    let pairs = query_pairs(raw.as_deref(), &state.limits)?;
    let session: Option<SessionId> =
        pairs.iter().find(|(k, _)| k == "session_id").map(|(_, v)| path_id("session_id", v)).transpose()?;
    let name_contains = pairs.iter().find(|(k, _)| k == "name_contains").map(|(_, v)| v.to_lowercase());
    let mut out = Vec::new();
    let stats = last_day(&state, None).await?;
    for rule in state.store.list_rules().await? {
        if session.is_some_and(|s| s != rule.spec.session_id) {
            continue;
        }
        if name_contains.as_ref().is_some_and(|n| !rule.spec.display_name.to_lowercase().contains(n)) {
            continue;
        }
        out.push(view_with(&state, &rule, &stats).await?);
    }
    Ok(Json(Value::Array(out)))
}

pub(super) async fn read(State(state): State<AppState>, Path(raw): Path<String>) -> Result<Json<Value>, ApiError> {
    let rule = rule_or_404(&state, &raw).await?;
    Ok(Json(view(&state, &rule).await?))
}

pub(super) async fn patch(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    headers: HeaderMap,
    b: Body,
) -> Result<Json<Value>, ApiError> {
    let rule = rule_or_404(&state, &raw).await?;
    let changes = body_map(&state, &headers, b).await?;
    let definition = overlay(&rule, changes)?;
    let spec = definitions(&state).validate(definition, Some(&rule.spec)).await?;
    let updated = state.store.update_rule(rule.id, &spec).await?;
    super::announce(&state, Announcement::RulesChanged).await;
    Ok(Json(view(&state, &updated).await?))
}

/// The stored definition of `rule` overlaid with `changes` (a PATCH body),
/// to be validated whole.
pub(super) fn overlay(rule: &Rule, changes: Map<String, Value>) -> Result<RuleDefinition, ApiError> {
    check_keys(&changes).map_err(ApiError::BadRequest)?;
    let mut merged = match serde_json::to_value(&rule.spec) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    };
    if changes.contains_key("session_name") || changes.contains_key("project_name") {
        merged.remove("session_id");
    }
    // Derived from the history below, never from a client.
    merged.remove("retired_signing_secret");
    let idle_given = changes.contains_key("thread_idle_seconds");
    for (k, v) in changes {
        merged.insert(k, v);
    }
    // The stored idle time is the default's echo on a rule that groups
    // nothing: only a client that names it asks for it.
    if merged.get("group_by").is_none_or(Value::is_null) && !idle_given {
        merged.remove("thread_idle_seconds");
    }
    RuleDefinition::from_map(merged).map_err(ApiError::BadRequest)
}

pub(super) async fn delete(State(state): State<AppState>, Path(raw): Path<String>) -> Result<Json<Value>, ApiError> {
    let rule = rule_or_404(&state, &raw).await?;
    state.store.delete_rule(rule.id).await?;
    super::announce(&state, Announcement::RulesChanged).await;
    Ok(Json(json!({"deleted": rule.id})))
}

pub(super) async fn logs(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let rule = rule_or_404(&state, &raw).await?;
    let pairs = query_pairs(q.as_deref(), &state.limits)?;
    let limit = query_usize(&pairs, "limit", 150, 1440)?.max(1);
    let offset = query_offset(&pairs)?;
    let logs = state.store.rule_logs(rule.id, limit, offset).await?;
    Ok(Json(Value::Array(logs.iter().map(log_json).collect())))
}

/// `GET /runs/rules/{id}/logs/v2?limit=&cursor=`: LangSmith's cursor-paged
/// log, `{logs, cursor, has_more}`; pass `cursor` back for the next page.
/// The cursor is the last line's place, so lines logged meanwhile shift nothing.
pub(super) async fn logs_v2(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let rule = rule_or_404(&state, &raw).await?;
    let pairs = query_pairs(q.as_deref(), &state.limits)?;
    let limit = query_usize(&pairs, "limit", 150, 1440)?.max(1);
    let after = match pairs.iter().rev().find(|(k, _)| k == "cursor") {
        Some((_, c)) => Some(decode_log_cursor(c)?),
        None => None,
    };
    let mut logs = state.store.rule_log_page(rule.id, after.as_ref(), limit + 1).await?;
    let has_more = logs.len() > limit;
    logs.truncate(limit);
    let cursor = logs
        .last()
        .filter(|_| has_more)
        .map(|l| URL_SAFE_NO_PAD.encode(format!("{}|{}", l.applied_at.to_offset_string(), l.run_id)));
    Ok(Json(json!({"logs": logs.iter().map(log_json).collect::<Vec<_>>(), "cursor": cursor, "has_more": has_more})))
}

fn decode_log_cursor(raw: &str) -> Result<RuleLogCursor, ApiError> {
    let bad =
        || ApiError::BadRequest(format!("invalid cursor {raw:?}: pass back the cursor of the last page unchanged"));
    let text = String::from_utf8(URL_SAFE_NO_PAD.decode(raw).map_err(|_| bad())?).map_err(|_| bad())?;
    let (at, run) = text.split_once('|').ok_or_else(bad)?;
    Ok(RuleLogCursor { applied_at: at.parse().map_err(|_| bad())?, run_id: run.parse().map_err(|_| bad())? })
}

/// `POST /runs/rules/trigger` with `{"rule_ids": [...]}`: a cycle now for
/// each (every enabled rule when `rule_ids` is absent). LangSmith's
/// `dataset_id` (rules over a dataset's experiments) has no runhook
/// counterpart and is refused.
pub(super) async fn trigger_many(
    State(state): State<AppState>,
    headers: HeaderMap,
    b: Body,
) -> Result<Json<Value>, ApiError> {
    let bytes = body::read_json(&headers, b, state.limits).await?;
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Trigger {
        rule_ids: Option<Vec<RuleId>>,
        dataset_id: Option<Value>,
    }
    let req: Trigger =
        if bytes.is_empty() { Trigger { rule_ids: None, dataset_id: None } } else { body::json(&bytes, "trigger")? };
    if req.dataset_id.as_ref().is_some_and(|d| !d.is_null()) {
        return Err(ApiError::BadRequest("dataset_id: runhook's rules watch projects; name them by rule_ids".into()));
    }
    let ids: Vec<RuleId> = match req.rule_ids {
        Some(ids) => {
            body::check_list("rule_ids", ids.len(), state.limits.max_list_items, "limits.max_list_items")?;
            for id in &ids {
                if state.store.get_rule(*id).await?.is_none() {
                    return Err(ApiError::NotFound(format!("rule_ids: rule {id} not found")));
                }
            }
            ids
        }
        None => state.store.list_rules().await?.into_iter().filter(|r| r.spec.is_enabled).map(|r| r.id).collect(),
    };
    for id in &ids {
        super::announce(&state, Announcement::Trigger(*id)).await;
    }
    Ok(Json(json!({"triggered": ids})))
}

/// `GET /runs/rules/{id}/cycles?limit=`: the rule's last cycles, newest first.
pub(super) async fn cycles(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let rule = rule_or_404(&state, &raw).await?;
    let pairs = query_pairs(q.as_deref(), &state.limits)?;
    let limit = query_usize(&pairs, "limit", 50, 1000)?.max(1);
    let cycles = state.store.rule_cycles(rule.id, limit).await?;
    Ok(Json(Value::Array(cycles.iter().map(cycle_json).collect())))
}

fn cycle_json(c: &CycleSummary) -> Value {
    json!({"start_time": c.window_start.to_offset_string(), "end_time": c.window_end.to_offset_string(),
           "candidates": c.candidates, "actioned": c.actioned, "error": c.error})
}

/// `GET /runs/{id}/rules`: the rules that acted on a run.
pub(super) async fn acted_on(State(state): State<AppState>, Path(raw): Path<String>) -> Result<Json<Value>, ApiError> {
    let run: RunId = path_id("run id", &raw)?;
    let Some(found) = state.store.get_run(run).await? else {
        return Err(ApiError::NotFound(format!("run {run} not found")));
    };
    let acted: std::collections::HashSet<RuleId> = state.store.rules_acted_on(found.id).await?.into_iter().collect();
    let out = state.store.list_rules().await?.into_iter().filter(|r| acted.contains(&r.id));
    Ok(Json(Value::Array(
        out.map(|rule| json!({"rule_id": rule.id, "display_name": rule.spec.display_name})).collect(),
    )))
}

pub(super) async fn last_applied(
    State(state): State<AppState>,
    Path(raw): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let rule = rule_or_404(&state, &raw).await?;
    let logs = state.store.rule_logs(rule.id, 1, 0).await?;
    let last =
        logs.first().ok_or_else(|| ApiError::NotFound(format!("rule {} has not acted on any run yet", rule.id)))?;
    Ok(Json(log_json(last)))
}

pub(super) async fn trigger(State(state): State<AppState>, Path(raw): Path<String>) -> Result<Json<Value>, ApiError> {
    let rule = rule_or_404(&state, &raw).await?;
    super::announce(&state, Announcement::Trigger(rule.id)).await;
    Ok(Json(view(&state, &rule).await?))
}

#[cfg(test)]
mod tests {
    use crate::api::mask_url;

    #[test]
    fn urls_are_masked() {
        assert_eq!(mask_url("https://h.example/hook?secret=abc&x=1"), "https://h.example/hook?secret=***&x=***");
        assert_eq!(mask_url("http://h.example/p"), "http://h.example/p");
        assert_eq!(mask_url("not a url"), "***");
        assert_eq!(mask_url("https://u:pw@h.example/p"), "https://u:***@h.example/p");
    }
}
