//! Feedback: `POST /feedback`, `GET /feedback`, `GET /feedback/{id}`.
//!
//! A create for a run that is not stored yet answers 404; the SDK retries
//! on 404, which covers feedback sent right after a run that is still in
//! the SDK's queue. Creates are idempotent by feedback id.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;

use super::error::ApiError;
use super::{AppState, body, path_id, query_offset, query_pairs, query_usize};
use runhook_core::model::{Feedback, FeedbackCreate, FeedbackId, RunId, SessionId, Timestamp};
use runhook_store::FeedbackQuery;

pub(super) async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Feedback>, ApiError> {
    let bytes = body::read_json(&headers, body, state.limits).await?;
    let c: FeedbackCreate = body::json(&bytes, "feedback")?;
    let f = Feedback::create(c, Timestamp::now()).map_err(|e| ApiError::Unprocessable(e.to_string()))?;
    let stored = state.store.create_feedback(f).await?;
    metrics::counter!("runhook_feedback_ingested_total", "endpoint" => "/feedback").increment(1);
    Ok(Json(stored))
}

pub(super) async fn read(State(state): State<AppState>, Path(raw): Path<String>) -> Result<Json<Feedback>, ApiError> {
    let id: FeedbackId = path_id("feedback id", &raw)?;
    let f =
        state.store.get_feedback(id).await?.ok_or_else(|| ApiError::NotFound(format!("feedback {id} not found")))?;
    Ok(Json(f))
}

pub(super) async fn list(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Vec<Feedback>>, ApiError> {
    let pairs = query_pairs(raw.as_deref(), &state.limits)?;
    let mut q = FeedbackQuery {
        limit: query_usize(&pairs, "limit", 100, 1000)?.max(1),
        offset: query_offset(&pairs)?,
        ..FeedbackQuery::default()
    };
    for (k, v) in &pairs {
        match k.as_str() {
            "run" | "run_id" => q.runs.push(path_id::<RunId>("run", v)?),
            "key" => q.keys.push(v.clone()),
            "source" => q.sources.push(v.clone()),
            "session" | "session_id" => q.sessions.push(path_id::<SessionId>("session", v)?),
            _ => {}
        }
    }
    Ok(Json(state.store.list_feedback(&q).await?))
}
