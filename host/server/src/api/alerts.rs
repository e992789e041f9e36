//! Alert rules: `GET|POST /api/v1/alerts`, `GET|PATCH|DELETE
//! /api/v1/alerts/{id}`, and `POST /api/v1/alerts/backtest`.
//!
//! An alert is checked in full on the way in (its definition as
//! `alerts::definition` checks it, its webhooks and signing secret as a
//! rule's); a PATCH overlays the stored definition with the fields given
//! (webhooks kept unless sent), then checks the whole. Its view masks
//! webhook URLs and header values and carries where its evaluations left
//! it (level, value, incident key). Saved, it is evaluated by
//! `alerts::evaluate` on whichever replica holds it. The config file's
//! `[[alerts]]` go through the same checks (`apply_config_alerts`).
//!
//! The backtest:
//! The body is `{"alert": {...}, "hours": 24, "max_runs": 100000}`: the
//! alert as written (its project must exist; nothing is created), checked
//! as saving it will be (a 400 names the field). The answer has the
//! metric's series (each point's time, value and level) and the times the
//! alert would have fired and resolved (see `alerts::backtest`).

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use serde_json::{Map, Value, json};

use axum::extract::Path;

use super::error::ApiError;
use super::rules::definitions;
use super::{AppState, body, path_id, webhook_view};
use crate::alerts::backtest::{self, BacktestLimits};
use crate::alerts::definition;
use crate::alerts::read::ReadError;
use crate::alerts::state::incident_key;
use crate::config::ConfigAlert;
use crate::rules::definition::{DefinitionError, Definitions, check_signing_secret};
use crate::select::SelectError;
use runhook_core::model::AlertId;
use runhook_core::model::Timestamp;
use runhook_core::model::alert::AlertDefinition;
use runhook_core::model::alert::{AlertSpec, Level};
use runhook_store::Alert;
use runhook_store::SessionQuery;

/// The longest span a backtest covers, in hours (a week).
const MAX_HOURS: u64 = 168;
/// Most runs a backtest reads.
const MAX_RUNS: u64 = 1_000_000;

pub(super) async fn backtest(
    State(state): State<AppState>,
    headers: HeaderMap,
    b: Body,
) -> Result<Json<Value>, ApiError> {
    let bytes = body::read_json(&headers, b, state.limits).await?;
    let mut req = match body::json::<Value>(&bytes, "alert backtest")? {
        Value::Object(map) => map,
        _ => return Err(ApiError::BadRequest("invalid alert backtest: expected a JSON object".into())),
    };
    if let Some(k) = req.keys().find(|k| !["alert", "hours", "max_runs"].contains(&k.as_str())) {
        return Err(ApiError::BadRequest(format!("unknown field {k:?}: a backtest takes alert, hours and max_runs")));
    }
    let hours = body::int_field(&req, "hours", 24, MAX_HOURS)?;
    let max_runs = body::int_field(&req, "max_runs", 100_000, MAX_RUNS)?;
    let alert = req.remove("alert").ok_or_else(|| ApiError::BadRequest("alert is required".into()))?;
    let d = AlertDefinition::from_value(alert).map_err(ApiError::BadRequest)?;
    let session_id = match (d.session_id, d.session_name.as_deref().map(str::trim).filter(|n| !n.is_empty())) {
        (Some(id), _) => {
            let found = state.store.get_session(id).await?;
            found.ok_or_else(|| ApiError::BadRequest(format!("session_id {id}: no such project")))?.id
        }
        (None, Some(name)) => {
            let q = SessionQuery { name: Some(name.to_string()), limit: 1, ..SessionQuery::default() };
            let found = state.store.list_sessions(&q).await?;
            found
                .first()
                .map(|s| s.id)
                .ok_or_else(|| ApiError::BadRequest(format!("session_name: no project named {name:?}")))?
        }
        (None, None) => {
            return Err(ApiError::BadRequest("session_id or session_name (the project) is required".into()));
        }
    };
    let spec = definition::check(d, session_id).map_err(ApiError::BadRequest)?;
    let until = Timestamp::now();
    let since = Timestamp::from_datetime(until.as_datetime() - chrono::Duration::hours(hours as i64));
    let limits = BacktestLimits { since, until, max_runs: max_runs as usize, budget: state.limits.request_timeout };
    let t = backtest::backtest(&state.store, &spec, limits).await.map_err(|e| match e {
        ReadError::Store(e) => e.into(),
        ReadError::Filter(e) => ApiError::BadRequest(format!("filter: {e}")),
        ReadError::Select(SelectError::Store(e)) => e.into(),
        ReadError::Select(e) => ApiError::Unprocessable(format!(
            "{e} (limits.request_timeout_ms): try fewer hours, a lower max_runs or a cheaper filter"
        )),
        shared @ ReadError::Shared(_) => ApiError::Internal(Box::new(shared)),
    })?;
    let points: Vec<Value> =
        t.points.iter().map(|p| json!({"time": p.at.to_offset_string(), "value": p.value, "level": p.level})).collect();
    let events: Vec<Value> = t
        .events
        .iter()
        .map(|(at, n)| {
            json!({"time": at.to_offset_string(), "event": n.event, "from": n.from, "to": n.to, "value": n.value,
                   "threshold": n.threshold, "incident_started": n.incident_started.to_offset_string()})
        })
        .collect();
    Ok(Json(json!({
        "window": {"since": since.to_offset_string(), "until": until.to_offset_string()},
        "scanned": t.scanned,
        "complete": t.complete,
        "selected": t.selected,
        "step_seconds": t.step_seconds,
        "points": points,
        "events": events,
    })))
}

/// An alert as the API shows it.
async fn view(state: &AppState, a: &Alert) -> Result<Value, ApiError> {
    let s = &a.spec;
    let session = state.store.get_session(s.session_id).await?;
    let webhooks: Vec<Value> = s.webhooks.iter().map(webhook_view).collect();
    let st = &a.state;
    let bad = st.level != Level::Ok;
    Ok(json!({
        "id": a.id,
        "display_name": s.display_name,
        "session_id": s.session_id,
        "session_name": session.map(|x| x.name),
        "filter": s.filter,
        "metric": s.metric,
        "window_minutes": s.window_minutes,
        "condition": s.condition,
        "warning": s.warning,
        "critical": s.critical,
        "no_data": s.no_data,
        "evaluate_every_seconds": s.evaluate_every_seconds,
        "reminder_minutes": s.reminder_minutes,
        "webhooks": webhooks,
        "has_signing_secret": s.signing_secret.is_some(),
        "is_enabled": s.is_enabled,
        "created_at": a.created_at.to_offset_string(),
        "updated_at": a.updated_at.to_offset_string(),
        "state": {
            "level": st.level,
            "value": st.value,
            "incident_key": bad.then(|| incident_key(a.id, st.incident)),
            "bad_since": st.bad_since.map(|t| t.to_offset_string()),
            "notified_at": st.notified_at.map(|t| t.to_offset_string()),
            "evaluated_at": st.evaluated_at.map(|t| t.to_offset_string()),
        },
    }))
}

/// Checks a whole definition into a spec (creating a project it names), as
/// the API and the config file's `[[alerts]]` do.
pub(crate) async fn checked(defs: &Definitions<'_>, d: AlertDefinition) -> Result<AlertSpec, DefinitionError> {
    let bad = DefinitionError::Invalid;
    let session_id = match (d.session_id, d.session_name.as_deref().map(str::trim).filter(|n| !n.is_empty())) {
        (Some(id), _) => {
            let found = defs.store.get_session(id).await?;
            found.ok_or_else(|| bad(format!("session_id {id}: no such project")))?.id
        }
        (None, Some(name)) => defs.project_by_name(name).await?,
        (None, None) => return Err(bad("session_id or session_name (the project) is required".into())),
    };
    let spec = definition::check(d, session_id).map_err(bad)?;
    if spec.webhooks.is_empty() {
        return Err(bad("webhooks: an alert needs a webhook to notify".into()));
    }
    defs.check_webhooks(&spec.webhooks).await?;
    check_signing_secret(spec.signing_secret.as_deref())?;
    Ok(spec)
}

/// Applies the config file's `[[alerts]]`: each checked as an API create,
/// then created, or updated when its definition changed (its state kept).
/// Errors name the alert by its position and display name.
pub(crate) async fn apply_config_alerts(defs: &Definitions<'_>, alerts: &[ConfigAlert]) -> Result<usize, String> {
    for (i, alert) in alerts.iter().enumerate() {
        let name = alert.definition.display_name.as_deref().unwrap_or("?");
        let at = |e: String| format!("alerts[{i}] ({name}): {e}");
        let spec = checked(defs, alert.definition.clone()).await.map_err(|e| at(e.to_string()))?;
        match defs.store.get_alert(alert.id).await.map_err(|e| at(e.to_string()))? {
            Some(existing) if existing.spec == spec => {}
            Some(_) => drop(defs.store.update_alert(alert.id, &spec).await.map_err(|e| at(e.to_string()))?),
            None => drop(defs.store.create_alert(alert.id, &spec).await.map_err(|e| at(e.to_string()))?),
        }
    }
    Ok(alerts.len())
}

async fn alert_body(state: &AppState, headers: &HeaderMap, b: Body) -> Result<Map<String, Value>, ApiError> {
    let bytes = body::read_json(headers, b, state.limits).await?;
    match body::json::<Value>(&bytes, "alert")? {
        Value::Object(map) => Ok(map),
        _ => Err(ApiError::BadRequest("invalid alert: expected a JSON object".into())),
    }
}

async fn alert_or_404(state: &AppState, raw: &str) -> Result<Alert, ApiError> {
    let id: AlertId = path_id("alert id", raw)?;
    state.store.get_alert(id).await?.ok_or_else(|| ApiError::NotFound(format!("alert {id} not found")))
}

pub(super) async fn list(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let mut out = Vec::new();
    for a in state.store.list_alerts().await? {
        out.push(view(&state, &a).await?);
    }
    Ok(Json(Value::Array(out)))
}

pub(super) async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    b: Body,
) -> Result<Json<Value>, ApiError> {
    let map = alert_body(&state, &headers, b).await?;
    let d = AlertDefinition::from_value(Value::Object(map)).map_err(ApiError::BadRequest)?;
    let spec = checked(&definitions(&state), d).await?;
    let created = state.store.create_alert(AlertId::new_v4(), &spec).await?;
    Ok(Json(view(&state, &created).await?))
}

pub(super) async fn read(State(state): State<AppState>, Path(raw): Path<String>) -> Result<Json<Value>, ApiError> {
    let a = alert_or_404(&state, &raw).await?;
    Ok(Json(view(&state, &a).await?))
}

pub(super) async fn patch(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    headers: HeaderMap,
    b: Body,
) -> Result<Json<Value>, ApiError> {
    let a = alert_or_404(&state, &raw).await?;
    let changes = alert_body(&state, &headers, b).await?;
    let mut merged = match serde_json::to_value(&a.spec) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    };
    if changes.contains_key("session_name") || changes.contains_key("project_name") {
        merged.remove("session_id");
    }
    merged.extend(changes);
    let d = AlertDefinition::from_value(Value::Object(merged)).map_err(ApiError::BadRequest)?;
    let spec = checked(&definitions(&state), d).await?;
    let updated = state.store.update_alert(a.id, &spec).await?;
    Ok(Json(view(&state, &updated).await?))
}

pub(super) async fn delete(State(state): State<AppState>, Path(raw): Path<String>) -> Result<Json<Value>, ApiError> {
    let a = alert_or_404(&state, &raw).await?;
    state.store.delete_alert(a.id).await?;
    Ok(Json(json!({"deleted": a.id})))
}
