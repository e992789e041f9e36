//! The rules API: `/runs/rules` (LangSmith's schema plus runhook's fields).
//!
//! Every create and patch is validated in full before it is stored: the
//! project, the three filters, the webhook URLs and headers, the plugins
//! (loaded, so a missing capability or a broken component is refused now,
//! not at the first cycle) and runhook's own fields. A 400 names the field
//! and the problem. Changes reach the scheduler at once, without a restart.
//! Responses mask webhook query values and never return header values or
//! the signing secret.

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::error::ApiError;
use super::mask_url;
use super::{AppState, body, path_id, query_pairs, query_usize};
use crate::delivery;
use crate::select::Selection;
use runhook_core::model::rule::defaults;
use runhook_core::model::{
    PluginRef, Rule, RuleId, RulePlugins, RuleSpec, Session, SessionId, Timestamp, WebhookTarget,
};
use runhook_plugins::{Capabilities, Capability, PluginSpec};
use runhook_store::rules::log_json;
use runhook_store::{SessionQuery, StoreError};

/// Custom headers a webhook may carry, and the longest value (Svix's cap).
const MAX_HEADERS: usize = 32;
const MAX_HEADER_VALUE: usize = 4096;

/// LangSmith rule fields for actions runhook does not perform; accepted
/// when empty, refused otherwise.
const UNSUPPORTED: &[&str] = &[
    "evaluators",
    "code_evaluators",
    "alerts",
    "add_to_annotation_queue_id",
    "add_to_dataset_id",
    "add_to_dataset_prefer_correction",
    "extend_only",
    "use_corrections_dataset",
    "num_few_shot_examples",
    "evaluator_version",
    "evaluator_id",
    "transient",
    "create_alignment_queue",
    "include_extended_stats",
    "group_by",
    "spend_limit",
    "tracer_session_issue_id",
    "dataset_id",
    "thread_filter",
];

#[derive(Debug, Deserialize)]
struct RuleBody {
    display_name: Option<String>,
    session_id: Option<SessionId>,
    #[serde(alias = "project_name")]
    session_name: Option<String>,
    filter: Option<String>,
    trace_filter: Option<String>,
    tree_filter: Option<String>,
    sampling_rate: Option<f64>,
    is_enabled: Option<bool>,
    backfill_from: Option<Timestamp>,
    webhooks: Option<Vec<WebhookTarget>>,
    plugins: Option<RulePlugins>,
    interval_seconds: Option<u64>,
    max_runs_per_payload: Option<usize>,
    signing_secret: Option<String>,
}

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
    "plugins",
    "interval_seconds",
    "max_runs_per_payload",
    "signing_secret",
];

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError::BadRequest(msg.into())
}

/// Checks the keys of a rule body: LangSmith's unsupported actions must be
/// empty, and nothing unknown may appear.
fn check_keys(map: &Map<String, Value>) -> Result<(), ApiError> {
    for (k, v) in map {
        if KNOWN.contains(&k.as_str()) {
            continue;
        }
        let empty = matches!(v, Value::Null | Value::Bool(false))
            || v.as_array().is_some_and(Vec::is_empty)
            || v.as_object().is_some_and(Map::is_empty);
        if UNSUPPORTED.contains(&k.as_str()) {
            if !empty {
                return Err(bad(format!(
                    "{k} is not supported by runhook; rules act through webhooks and plugins (plugins.evaluate for evaluators)"
                )));
            }
        } else {
            return Err(bad(format!("unknown rule field {k:?}")));
        }
    }
    Ok(())
}

/// Validates a full rule body into a spec (loading its plugins).
async fn validate(state: &AppState, map: Map<String, Value>) -> Result<RuleSpec, ApiError> {
    check_keys(&map)?;
    let b: RuleBody = body::json(&serde_json::to_vec(&map).unwrap_or_default(), "rule")?;
    let display_name = b.display_name.map(|n| n.trim().to_string()).filter(|n| !n.is_empty());
    let display_name = display_name.ok_or_else(|| bad("display_name is required"))?;
    if display_name.len() > 256 {
        return Err(bad("display_name is longer than 256 characters"));
    }
    let session_id = match (b.session_id, b.session_name.as_deref().map(str::trim).filter(|n| !n.is_empty())) {
        (Some(id), _) => {
            state.store.get_session(id).await?.ok_or_else(|| bad(format!("session_id {id}: no such project")))?;
            id
        }
        (None, Some(name)) => project_by_name(state, name).await?,
        (None, None) => return Err(bad("session_id or session_name (the project to watch) is required")),
    };
    let sampling_rate = b.sampling_rate.unwrap_or(1.0);
    if !(0.0..=1.0).contains(&sampling_rate) {
        return Err(bad(format!("sampling_rate must be between 0 and 1, got {sampling_rate}")));
    }
    Selection::parse(b.filter.as_deref(), b.trace_filter.as_deref(), b.tree_filter.as_deref())
        .map_err(|e| bad(e.to_string()))?;
    let webhooks = b.webhooks.unwrap_or_default();
    for (i, w) in webhooks.iter().enumerate() {
        let url = reqwest::Url::parse(&w.url).map_err(|e| bad(format!("webhooks[{i}].url: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(bad(format!("webhooks[{i}].url: must be an http or https URL with a host")));
        }
        // The query may hold a secret: the message names the host only.
        state.targets.check_target(&w.url).await.map_err(|e| bad(format!("webhooks[{i}].url: {e}")))?;
        let headers = w.headers.as_ref();
        if headers.is_some_and(|h| h.len() > MAX_HEADERS) {
            return Err(bad(format!("webhooks[{i}].headers: at most {MAX_HEADERS} custom headers")));
        }
        for (name, value) in headers.into_iter().flatten() {
            if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
                return Err(bad(format!("webhooks[{i}].headers: {name:?} is not a valid header name")));
            }
            if let Some(why) = delivery::reserved_header(name) {
                return Err(bad(format!("webhooks[{i}].headers.{name}: a rule cannot set this header: {why}")));
            }
            if value.len() > MAX_HEADER_VALUE || reqwest::header::HeaderValue::from_str(value).is_err() {
                return Err(bad(format!(
                    "webhooks[{i}].headers.{name}: not a valid header value (visible ASCII, at most \
                     {MAX_HEADER_VALUE} bytes)"
                )));
            }
        }
    }
    let plugins = b.plugins.unwrap_or_default();
    for (field, r, cap) in [
        ("plugins.match", &plugins.matcher, Capability::Match),
        ("plugins.transform", &plugins.transform, Capability::Transform),
        ("plugins.evaluate", &plugins.evaluate, Capability::Evaluate),
    ] {
        if let Some(r) = r {
            check_plugin(state, field, r, cap).await?;
        }
    }
    if webhooks.is_empty() && plugins.evaluate.is_none() {
        return Err(bad("a rule needs an action: webhooks, or an evaluator plugin (plugins.evaluate)"));
    }
    let interval_seconds = b.interval_seconds.unwrap_or(defaults::INTERVAL_SECONDS);
    if !(1..=86_400).contains(&interval_seconds) {
        return Err(bad(format!("interval_seconds must be between 1 and 86400, got {interval_seconds}")));
    }
    let max_runs_per_payload = b.max_runs_per_payload.unwrap_or(defaults::MAX_RUNS_PER_PAYLOAD);
    if !(1..=10_000).contains(&max_runs_per_payload) {
        return Err(bad(format!("max_runs_per_payload must be between 1 and 10000, got {max_runs_per_payload}")));
    }
    if let Some(secret) = &b.signing_secret {
        use base64::Engine;
        let key = secret.strip_prefix("whsec_").map(|k| base64::engine::general_purpose::STANDARD.decode(k));
        if !matches!(key, Some(Ok(ref k)) if k.len() >= 16) {
            return Err(bad("signing_secret must be whsec_ followed by at least 16 bytes in base64"));
        }
    }
    Ok(RuleSpec {
        display_name,
        session_id,
        filter: b.filter.filter(|f| !f.trim().is_empty()),
        trace_filter: b.trace_filter.filter(|f| !f.trim().is_empty()),
        tree_filter: b.tree_filter.filter(|f| !f.trim().is_empty()),
        sampling_rate,
        is_enabled: b.is_enabled.unwrap_or(true),
        backfill_from: b.backfill_from,
        webhooks,
        plugins,
        interval_seconds,
        max_runs_per_payload,
        signing_secret: b.signing_secret,
        retired_signing_secret: None,
    })
}

/// How long a replaced signing secret keeps signing.
fn signing_overlap() -> chrono::Duration {
    chrono::Duration::hours(defaults::SIGNING_SECRET_OVERLAP_HOURS)
}

async fn project_by_name(state: &AppState, name: &str) -> Result<SessionId, ApiError> {
    let q = SessionQuery { name: Some(name.to_string()), limit: 1, ..SessionQuery::default() };
    if let Some(s) = state.store.list_sessions(&q).await?.first() {
        return Ok(s.id);
    }
    let s = Session {
        id: SessionId::new_v4(),
        name: name.to_string(),
        description: None,
        extra: None,
        start_time: Timestamp::now(),
    };
    match state.store.create_session(s).await {
        Ok(s) => Ok(s.id),
        // Created concurrently: read it back.
        Err(StoreError::Conflict(_)) => {
            let found = state.store.list_sessions(&q).await?;
            found.first().map(|s| s.id).ok_or_else(|| bad(format!("project {name:?} could not be created")))
        }
        Err(e) => Err(e.into()),
    }
}

async fn check_plugin(state: &AppState, field: &str, r: &PluginRef, cap: Capability) -> Result<(), ApiError> {
    if r.path.trim().is_empty() {
        return Err(bad(format!("{field}.path is required")));
    }
    if r.deadline_ms.is_some_and(|d| !(1..=60_000).contains(&d)) {
        return Err(bad(format!("{field}.deadline_ms must be between 1 and 60000")));
    }
    if r.memory_mib.is_some_and(|m| !(1..=4096).contains(&m)) {
        return Err(bad(format!("{field}.memory_mib must be between 1 and 4096")));
    }
    let registry = state.plugins.clone();
    let spec = PluginSpec {
        name: runhook_plugins::name_from_path(&r.path),
        path: r.path.clone().into(),
        required: Capabilities::of(cap),
    };
    // Checked without compiling; a first compilation runs in the background.
    let prepared = tokio::task::spawn_blocking(move || registry.prepare(&spec))
        .await
        .map_err(|e| ApiError::Internal(Box::new(e)))?;
    prepared.map_err(|e| bad(format!("{field}: {e}")))
}

async fn view(state: &AppState, rule: &Rule) -> Result<Value, ApiError> {
    let s = &rule.spec;
    let session = state.store.get_session(s.session_id).await?;
    let webhooks: Vec<Value> = s
        .webhooks
        .iter()
        .map(|w| {
            let headers: BTreeMap<&String, &str> = w.headers.iter().flatten().map(|(k, _)| (k, "***")).collect();
            json!({"url": mask_url(&w.url), "headers": headers})
        })
        .collect();
    let last_cycle = state.store.rule_cycles(rule.id, 1).await?.into_iter().next().map(|c| {
        json!({"start_time": c.window_start.to_offset_string(), "end_time": c.window_end.to_offset_string(),
               "candidates": c.candidates, "actioned": c.actioned, "error": c.error})
    });
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
        "plugins": s.plugins,
        "interval_seconds": s.interval_seconds,
        "max_runs_per_payload": s.max_runs_per_payload,
        "has_signing_secret": s.signing_secret.is_some(),
        // A replaced secret still signing beside the new one, until then.
        "retired_signing_secret_until": s.retired_signing_secret.as_ref().map(|r| r.until.to_offset_string()),
        "evaluators": null,
        "code_evaluators": null,
        "alerts": null,
        "add_to_annotation_queue_id": null,
        "add_to_dataset_id": null,
        "evaluator_version": 1,
        "created_at": rule.created_at,
        "updated_at": rule.updated_at,
        "last_cycle": last_cycle,
    }))
}

async fn body_map(state: &AppState, headers: &HeaderMap, b: Body) -> Result<Map<String, Value>, ApiError> {
    let bytes = body::read(headers, b, state.limits).await?;
    match body::json::<Value>(&bytes, "rule")? {
        Value::Object(map) => Ok(map),
        _ => Err(bad("invalid rule: expected a JSON object")),
    }
}

async fn rule_or_404(state: &AppState, raw: &str) -> Result<Rule, ApiError> {
    let id: RuleId = path_id("rule id", raw)?;
    state.store.get_rule(id).await?.ok_or_else(|| ApiError::NotFound(format!("rule {id} not found")))
}

pub(super) async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    b: Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let map = body_map(&state, &headers, b).await?;
    let spec = validate(&state, map).await?;
    let rule = state.store.create_rule(RuleId::new_v4(), &spec).await?;
    state.signals.rules_changed();
    Ok((StatusCode::OK, Json(view(&state, &rule).await?)))
}

pub(super) async fn list(State(state): State<AppState>, RawQuery(raw): RawQuery) -> Result<Json<Value>, ApiError> {
    let pairs = query_pairs(raw.as_deref())?;
    let session: Option<SessionId> =
        pairs.iter().find(|(k, _)| k == "session_id").map(|(_, v)| path_id("session_id", v)).transpose()?;
    let name_contains = pairs.iter().find(|(k, _)| k == "name_contains").map(|(_, v)| v.to_lowercase());
    let mut out = Vec::new();
    for rule in state.store.list_rules().await? {
        if session.is_some_and(|s| s != rule.spec.session_id) {
            continue;
        }
        if name_contains.as_ref().is_some_and(|n| !rule.spec.display_name.to_lowercase().contains(n)) {
            continue;
        }
        out.push(view(&state, &rule).await?);
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
    check_keys(&changes)?;
    // The stored definition, overlaid with the changes, validated whole.
    let mut merged = match serde_json::to_value(&rule.spec) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    };
    if changes.contains_key("session_name") || changes.contains_key("project_name") {
        merged.remove("session_id");
    }
    // Derived from the history below, never from a client.
    merged.remove("retired_signing_secret");
    for (k, v) in changes {
        merged.insert(k, v);
    }
    let mut spec = validate(&state, merged).await?;
    spec.rotate_from(&rule.spec, Timestamp::now(), signing_overlap());
    let updated = state.store.update_rule(rule.id, &spec).await?;
    state.signals.rules_changed();
    Ok(Json(view(&state, &updated).await?))
}

pub(super) async fn delete(State(state): State<AppState>, Path(raw): Path<String>) -> Result<Json<Value>, ApiError> {
    let rule = rule_or_404(&state, &raw).await?;
    state.store.delete_rule(rule.id).await?;
    state.signals.rules_changed();
    Ok(Json(json!({"deleted": rule.id})))
}

pub(super) async fn logs(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let rule = rule_or_404(&state, &raw).await?;
    let pairs = query_pairs(q.as_deref())?;
    let limit = query_usize(&pairs, "limit", 150, 1440)?.max(1);
    let offset = query_usize(&pairs, "offset", 0, usize::MAX)?;
    let logs = state.store.rule_logs(rule.id, limit, offset).await?;
    Ok(Json(Value::Array(logs.iter().map(log_json).collect())))
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
    state.signals.trigger(rule.id);
    Ok(Json(view(&state, &rule).await?))
}

/// The id a config-file rule gets when it names none: stable across
/// restarts, derived from its display name.
fn config_rule_id(map: &Map<String, Value>) -> Result<RuleId, String> {
    match map.get("id") {
        Some(Value::String(s)) => s.parse().map_err(|_| format!("id {s:?} is not a UUID")),
        Some(_) => Err("id must be a UUID string".into()),
        None => {
            let name = map.get("display_name").and_then(Value::as_str).ok_or("display_name is required")?;
            Ok(RuleId(uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, format!("runhook-rule:{name}").as_bytes())))
        }
    }
}

/// Applies the `[[rules]]` of the config file: each is validated like an
/// API create, then created, or updated when its definition changed.
/// Errors name the rule by its position and display name.
pub async fn apply_config_rules(state: &AppState, rules: &[Value]) -> Result<usize, String> {
    let mut applied = 0;
    for (i, rule) in rules.iter().enumerate() {
        let Value::Object(map) = rule else { return Err(format!("rules[{i}]: expected a table")) };
        let name = map.get("display_name").and_then(Value::as_str).unwrap_or("?").to_string();
        let at = |e: String| format!("rules[{i}] ({name}): {e}");
        let id = config_rule_id(map).map_err(at)?;
        let mut map = map.clone();
        map.remove("id");
        let mut spec = validate(state, map).await.map_err(|e| at(e.to_string()))?;
        let existing = state.store.get_rule(id).await.map_err(|e| at(e.to_string()))?;
        if let Some(existing) = &existing {
            spec.rotate_from(&existing.spec, Timestamp::now(), signing_overlap());
        }
        match existing {
            Some(existing) if existing.spec == spec => {}
            Some(_) => drop(state.store.update_rule(id, &spec).await.map_err(|e| at(e.to_string()))?),
            None => drop(state.store.create_rule(id, &spec).await.map_err(|e| at(e.to_string()))?),
        }
        applied += 1;
    }
    state.signals.rules_changed();
    Ok(applied)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_masked() {
        assert_eq!(mask_url("https://h.example/hook?secret=abc&x=1"), "https://h.example/hook?secret=***&x=***");
        assert_eq!(mask_url("http://h.example/p"), "http://h.example/p");
        assert_eq!(mask_url("not a url"), "***");
        assert_eq!(mask_url("https://u:pw@h.example/p"), "https://u:***@h.example/p");
    }
}
