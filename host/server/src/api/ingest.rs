//! Run ingest: `POST /runs/multipart`, `POST /runs/batch`, `POST /runs`,
//! `PATCH /runs/{id}`.
//!
//! Each request becomes one [`IngestBatch`], stored in one transaction: a
//! request with any bad part stores nothing. Posts are idempotent (a retried
//! post changes nothing); the batch endpoints accept a patch that arrives
//! before its post (the SDK's sender threads can reorder batches), while the
//! direct `PATCH /runs/{id}` refuses an unknown run with 404.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use serde_json::{Value, json};

use super::error::ApiError;
use super::{AppState, body, path_id};
use runhook_core::model::{RunId, RunWrite};
use runhook_store::{IngestBatch, IngestSummary};

fn accepted(path: &str, headers: &HeaderMap, summary: &IngestSummary) -> (StatusCode, Json<Value>) {
    let encoding = headers.get(header::CONTENT_ENCODING).and_then(|v| v.to_str().ok()).unwrap_or("identity");
    tracing::debug!(
        path,
        encoding,
        created = summary.created,
        updated = summary.updated,
        unchanged = summary.unchanged,
        feedback = summary.feedback,
        "ingested"
    );
    metrics::counter!("runhook_runs_ingested_total", "endpoint" => path.to_string())
        .increment((summary.created + summary.updated) as u64);
    metrics::counter!("runhook_feedback_ingested_total", "endpoint" => path.to_string())
        .increment(summary.feedback as u64);
    (StatusCode::ACCEPTED, Json(json!({})))
}

pub(super) async fn multipart(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    if !content_type.to_ascii_lowercase().starts_with("multipart/form-data") {
        return Err(ApiError::UnsupportedMediaType(format!(
            "expected Content-Type multipart/form-data, got {:?}",
            content_type
        )));
    }
    let bytes = body::read(&headers, body, state.limits).await?;
    let batch = runhook_wire::multipart::decode(&content_type, bytes, &state.limits.wire()).await?;
    let summary = state.store.ingest(batch).await?;
    Ok(accepted("/runs/multipart", &headers, &summary))
}

pub(super) async fn batch(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let bytes = body::read_json(&headers, body, state.limits).await?;
    let (posts, patches) = runhook_wire::batch::decode(&bytes, &state.limits.wire())?;
    let batch = IngestBatch { posts, patches, patch_creates: true, ..IngestBatch::default() };
    let summary = state.store.ingest(batch).await?;
    Ok(accepted("/runs/batch", &headers, &summary))
}

pub(super) async fn create_run(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let bytes = body::read_json(&headers, body, state.limits).await?;
    runhook_wire::batch::check_run_size(&bytes, state.limits.max_run_bytes)?;
    let mut w: RunWrite = body::json(&bytes, "run")?;
    let id = *w.id.get_or_insert_with(RunId::new_v4);
    // A direct post of a stored run is a conflict, as in LangSmith (the SDK
    // treats 409 as success, so its retries are safe).
    if state.store.get_run(id).await?.is_some() {
        return Err(ApiError::Conflict(format!("run {id} already exists")));
    }
    let summary = state.store.ingest(IngestBatch { posts: vec![w], ..IngestBatch::default() }).await?;
    Ok(accepted("/runs", &headers, &summary))
}

pub(super) async fn patch_run(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let id: RunId = path_id("run id", &raw)?;
    let bytes = body::read_json(&headers, body, state.limits).await?;
    runhook_wire::batch::check_run_size(&bytes, state.limits.max_run_bytes)?;
    let mut w: RunWrite = body::json(&bytes, "run patch")?;
    if w.id.is_some_and(|body_id| body_id != id) {
        return Err(ApiError::BadRequest(format!("run patch: body id differs from the URL's {id}")));
    }
    w.id = Some(id);
    state.store.ingest(IngestBatch { patches: vec![w], patch_creates: false, ..IngestBatch::default() }).await?;
    Ok(Json(json!({})))
}
