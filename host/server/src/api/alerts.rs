//! `POST /api/v1/alerts/backtest`: an alert evaluated over the stored runs
//! of the last hours, to tune its thresholds before saving it.
//!
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

use super::error::ApiError;
use super::{AppState, body};
use crate::alerts::backtest::{self, BacktestError, BacktestLimits};
use crate::alerts::definition;
use crate::select::SelectError;
use runhook_core::model::Timestamp;
use runhook_core::model::alert::AlertDefinition;
use runhook_store::SessionQuery;

/// The longest span a backtest covers, in hours (a week).
const MAX_HOURS: u64 = 168;
/// Most runs a backtest reads.
const MAX_RUNS: u64 = 1_000_000;

fn field(req: &Map<String, Value>, key: &str, default: u64, max: u64) -> Result<u64, ApiError> {
    match req.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => match v.as_u64() {
            Some(n) if (1..=max).contains(&n) => Ok(n),
            _ => Err(ApiError::BadRequest(format!("{key} must be an integer between 1 and {max}, got {v}"))),
        },
    }
}

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
    let hours = field(&req, "hours", 24, MAX_HOURS)?;
    let max_runs = field(&req, "max_runs", 100_000, MAX_RUNS)?;
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
        BacktestError::Store(e) => e.into(),
        BacktestError::Filter(e) => ApiError::BadRequest(format!("filter: {e}")),
        BacktestError::Select(SelectError::Store(e)) => e.into(),
        BacktestError::Select(e) => ApiError::Unprocessable(format!(
            "{e} (limits.request_timeout_ms): try fewer hours, a lower max_runs or a cheaper filter"
        )),
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
