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
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};

use super::error::ApiError;
use super::{AppState, body, multipart, path_id};
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
    let batch = multipart::decode(&content_type, bytes, &state.limits).await?;
    check_runs(batch.posts.len() + batch.patches.len(), state.limits.max_runs_per_request)?;
    let summary = state.store.ingest(batch).await?;
    Ok(accepted("/runs/multipart", &headers, &summary))
}

/// The `/runs/batch` body: `{"post": [...], "patch": [...]}`, each run
/// kept as its text until its size is checked.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchBody<'a> {
    #[serde(default, borrow)]
    post: Option<Vec<&'a RawValue>>,
    #[serde(default, borrow)]
    patch: Option<Vec<&'a RawValue>>,
}

/// Parses run `i` of list `kind`, refusing one larger than `max` bytes.
fn batch_run(kind: &str, i: usize, raw: &RawValue, max: usize) -> Result<RunWrite, ApiError> {
    let text = raw.get();
    if text.len() > max {
        return Err(ApiError::TooLarge(format!(
            "{kind}[{i}] is {} bytes; a run is at most {max} bytes (limits.max_run_bytes)",
            text.len()
        )));
    }
    let de = &mut serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let at = if path == "." { format!("{kind}[{i}]") } else { format!("{kind}[{i}].{path}") };
        ApiError::BadRequest(format!("invalid batch body at {at}: {}", e.into_inner()))
    })
}

/// Refuses a single-run body larger than a run may be.
fn check_run_size(bytes: &[u8], max: usize) -> Result<(), ApiError> {
    if bytes.len() > max {
        return Err(ApiError::TooLarge(format!(
            "the run is {} bytes; a run is at most {max} bytes (limits.max_run_bytes)",
            bytes.len()
        )));
    }
    Ok(())
}

pub(super) async fn batch(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let bytes = body::read_json(&headers, body, state.limits).await?;
    let parsed: BatchBody = body::json(&bytes, "batch body")?;
    let (raw_posts, raw_patches) = (parsed.post.unwrap_or_default(), parsed.patch.unwrap_or_default());
    check_runs(raw_posts.len() + raw_patches.len(), state.limits.max_runs_per_request)?;
    let max = state.limits.max_run_bytes;
    let posts = raw_posts.iter().enumerate().map(|(i, r)| batch_run("post", i, r, max)).collect::<Result<_, _>>()?;
    let patches =
        raw_patches.iter().enumerate().map(|(i, r)| batch_run("patch", i, r, max)).collect::<Result<_, _>>()?;
    let batch = IngestBatch { posts, patches, patch_creates: true, ..IngestBatch::default() };
    let IngestBatch { posts, patches, .. } = &batch;
    for (kind, list) in [("post", posts), ("patch", patches)] {
        if let Some(i) = list.iter().position(|w| w.id.is_none()) {
            return Err(ApiError::BadRequest(format!("invalid batch body at {kind}[{i}]: missing field \"id\"")));
        }
    }
    let summary = state.store.ingest(batch).await?;
    Ok(accepted("/runs/batch", &headers, &summary))
}

/// Refuses a request with more runs than one request may carry.
fn check_runs(runs: usize, max: usize) -> Result<(), ApiError> {
    if runs > max {
        return Err(ApiError::TooLarge(format!(
            "the request carries {runs} runs; at most {max} are accepted (limits.max_runs_per_request)"
        )));
    }
    Ok(())
}

pub(super) async fn create_run(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let bytes = body::read_json(&headers, body, state.limits).await?;
    check_run_size(&bytes, state.limits.max_run_bytes)?;
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
    check_run_size(&bytes, state.limits.max_run_bytes)?;
    let mut w: RunWrite = body::json(&bytes, "run patch")?;
    if w.id.is_some_and(|body_id| body_id != id) {
        return Err(ApiError::BadRequest(format!("run patch: body id differs from the URL's {id}")));
    }
    w.id = Some(id);
    state.store.ingest(IngestBatch { patches: vec![w], patch_creates: false, ..IngestBatch::default() }).await?;
    Ok(Json(json!({})))
}
