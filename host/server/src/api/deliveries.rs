//! The deliveries API: what happened to each webhook, and redelivery.
//!
//! `GET /deliveries?rule_id=&status=&since=&until=&limit=&offset=` lists
//! deliveries (queued in [since, until) when given), newest first, each
//! with every attempt (time, duration, class, status, error); `GET
//! /deliveries/{id}` shows one; `POST
//! /deliveries/{id}/redeliver` queues a delivered or failed one again with
//! the same `webhook-id`; `POST /deliveries/redeliver` does so for every
//! failed (or delivered) one queued in a time window, of one rule or all,
//! as after a receiver's outage (with `"dry_run": true`, it only counts
//! them, for a confirmation). URLs are shown with query values masked;
//! header values and signing secrets are never shown.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::ApiError;
use super::{AppState, body, mask_url, path_id, query_offset, query_pairs, query_usize};
use runhook_core::model::{DeliveryId, RuleId, Timestamp};
use runhook_store::{Delivery, DeliveryQuery, Finished, Redelivery};

const STATUSES: [&str; 3] = ["pending", "delivered", "failed"];

fn delivery_json(d: &Delivery) -> Value {
    json!({
        "id": d.id,
        "rule_id": d.rule_id,
        "url": mask_url(&d.url),
        "status": d.status,
        "attempts": d.attempts,
        "run_ids": d.run_ids,
        "created_at": d.created_at.to_offset_string(),
        "next_attempt_at": d.next_attempt_at.map(|t| t.to_offset_string()),
        "finished_at": d.finished_at.map(|t| t.to_offset_string()),
        "last_error": d.last_error,
        "history": d.history.iter().map(|a| json!({
            "attempt": a.attempt,
            "started_at": a.started_at.to_offset_string(),
            "duration_ms": a.duration_ms,
            "class": a.class,
            "status_code": a.status_code,
            "error": a.error,
        })).collect::<Vec<_>>(),
    })
}

pub(super) async fn list(State(state): State<AppState>, RawQuery(q): RawQuery) -> Result<Json<Value>, ApiError> {
    let pairs = query_pairs(q.as_deref(), &state.limits)?;
    let get = |key: &str| pairs.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
    let rule = get("rule_id").map(|raw| path_id::<RuleId>("rule_id", raw)).transpose()?;
    let status = get("status").map(str::to_string);
    if let Some(s) = &status
        && !STATUSES.contains(&s.as_str())
    {
        return Err(ApiError::BadRequest(format!("status must be one of {}, got {s:?}", STATUSES.join(", "))));
    }
    let time = |key: &str| {
        get(key)
            .map(|raw| raw.parse::<Timestamp>().map_err(|e| ApiError::BadRequest(format!("{key}: {e}"))))
            .transpose()
    };
    let query = DeliveryQuery {
        rule,
        status,
        since: time("since")?,
        until: time("until")?,
        limit: query_usize(&pairs, "limit", 100, 1000)?.max(1),
        offset: query_offset(&pairs)?,
    };
    let found = state.store.list_deliveries(&query).await?;
    Ok(Json(Value::Array(found.iter().map(delivery_json).collect())))
}

async fn delivery_or_404(state: &AppState, raw: &str) -> Result<Delivery, ApiError> {
    let id: DeliveryId = path_id("delivery id", raw)?;
    state.store.get_delivery(id).await?.ok_or_else(|| ApiError::NotFound(format!("delivery {id} not found")))
}

pub(super) async fn read(State(state): State<AppState>, Path(raw): Path<String>) -> Result<Json<Value>, ApiError> {
    Ok(Json(delivery_json(&delivery_or_404(&state, &raw).await?)))
}

pub(super) async fn redeliver(
    State(state): State<AppState>,
    Path(raw): Path<String>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let id: DeliveryId = path_id("delivery id", &raw)?;
    if !state.store.redeliver(id).await? {
        return Err(ApiError::NotFound(format!("delivery {id} not found")));
    }
    Ok((StatusCode::ACCEPTED, Json(delivery_json(&delivery_or_404(&state, &raw).await?))))
}

/// `POST /deliveries/redeliver`'s body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RedeliverBody {
    /// Deliveries queued at or after this time.
    since: Timestamp,
    /// ... and before this one (default: now).
    until: Option<Timestamp>,
    rule_id: Option<RuleId>,
    /// `failed` (default) or `delivered`.
    status: Option<String>,
    /// Only count what would be redelivered (to show before confirming).
    #[serde(default)]
    dry_run: bool,
}

pub(super) async fn redeliver_matching(
    State(state): State<AppState>,
    headers: HeaderMap,
    b: Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let bytes = body::read_json(&headers, b, state.limits).await?;
    let req: RedeliverBody = body::json(&bytes, "redelivery")?;
    let status = match req.status.as_deref() {
        None | Some("failed") => Finished::Failed,
        Some("delivered") => Finished::Delivered,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "status: only finished deliveries are redelivered: failed or delivered, got {other:?}"
            )));
        }
    };
    let until = req.until.unwrap_or_else(Timestamp::now);
    if until <= req.since {
        return Err(ApiError::BadRequest(format!("until ({until}) must be later than since ({})", req.since)));
    }
    if let Some(rule) = req.rule_id
        && state.store.get_rule(rule).await?.is_none()
    {
        return Err(ApiError::NotFound(format!("rule {rule} not found")));
    }
    if req.dry_run {
        let status = if status == Finished::Failed { "failed" } else { "delivered" };
        let q = DeliveryQuery {
            rule: req.rule_id,
            status: Some(status.into()),
            since: Some(req.since),
            until: Some(until),
            limit: 0,
            offset: 0,
        };
        return Ok((StatusCode::OK, Json(json!({"would_redeliver": state.store.count_deliveries(&q).await?}))));
    }
    let which = Redelivery { rule: req.rule_id, status, since: req.since, until };
    let n = state.store.redeliver_matching(&which).await?;
    Ok((StatusCode::ACCEPTED, Json(json!({"redelivered": n}))))
}
