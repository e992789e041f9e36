//! Annotation queues, as the LangSmith SDK calls them, and a reviewer's
//! way through one.
//!
//! `POST|GET /annotation-queues`, `GET|DELETE /annotation-queues/{id}`;
//! `POST .../{id}/runs` (run ids) and `POST .../{id}/runs/by-key` (the
//! SDK's `runs=[{run_id, session_id, start_time}]`) add runs, each once;
//! `GET .../{id}/runs?status=` lists them with `added_at` and
//! `last_reviewed_time`; `GET .../{id}/run/{index}` is the index-th run
//! still to review (0: the next one); `PATCH .../{id}/runs/{run_id}` with
//! `{"done": true}` marks it reviewed; `DELETE .../{id}/runs/{run_id}`
//! takes it out.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::error::ApiError;
use super::{AppState, body, path_id, query_offset, query_pairs, query_usize};
use runhook_core::model::{QueueId, RunId, Timestamp};
use runhook_store::{AnnotationQueue, QueueEntry, QueueQuery};

fn queue_json(state: &AppState, q: &AnnotationQueue) -> Value {
    json!({
        "id": q.id,
        "name": q.name,
        "description": q.description,
        "rubric_instructions": q.rubric_instructions,
        "created_at": q.created_at.to_offset_string(),
        "updated_at": q.updated_at.to_offset_string(),
        "tenant_id": state.store.tenant_id(),
    })
}

#[derive(Deserialize)]
struct QueueBody {
    name: String,
    id: Option<QueueId>,
    description: Option<String>,
    rubric_instructions: Option<String>,
}

pub(super) async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    b: Body,
) -> Result<Json<Value>, ApiError> {
    let bytes = body::read_json(&headers, b, state.limits).await?;
    let req: QueueBody = body::json(&bytes, "annotation queue")?;
    let name = req.name.trim().to_string();
    if name.is_empty() || name.len() > 512 {
        return Err(ApiError::BadRequest("name: 1 to 512 characters".into()));
    }
    let now = Timestamp::now();
    let queue = AnnotationQueue {
        id: req.id.unwrap_or_else(QueueId::new_v4),
        name,
        description: req.description,
        rubric_instructions: req.rubric_instructions,
        created_at: now,
        updated_at: now,
    };
    state.store.create_queue(&queue).await?;
    Ok(Json(queue_json(&state, &queue)))
}

pub(super) async fn list(State(state): State<AppState>, RawQuery(raw): RawQuery) -> Result<Json<Value>, ApiError> {
    let pairs = query_pairs(raw.as_deref(), &state.limits)?;
    let mut q = QueueQuery {
        limit: query_usize(&pairs, "limit", 100, 1000)?.max(1),
        offset: query_offset(&pairs)?,
        ..QueueQuery::default()
    };
    for (k, v) in &pairs {
        match k.as_str() {
            "name" => q.name = Some(v.clone()),
            "name_contains" => q.name_contains = Some(v.clone()),
            "ids" | "id" => q.ids.push(path_id("annotation queue id", v)?),
            _ => {}
        }
    }
    let found = state.store.list_queues(&q).await?;
    Ok(Json(Value::Array(found.iter().map(|q| queue_json(&state, q)).collect())))
}

async fn queue_or_404(state: &AppState, raw: &str) -> Result<AnnotationQueue, ApiError> {
    let id: QueueId = path_id("annotation queue id", raw)?;
    state.store.get_queue(id).await?.ok_or_else(|| ApiError::NotFound(format!("annotation queue {id} not found")))
}

pub(super) async fn read(State(state): State<AppState>, Path(raw): Path<String>) -> Result<Json<Value>, ApiError> {
    Ok(Json(queue_json(&state, &queue_or_404(&state, &raw).await?)))
}

pub(super) async fn delete(State(state): State<AppState>, Path(raw): Path<String>) -> Result<Json<Value>, ApiError> {
    let id: QueueId = path_id("annotation queue id", &raw)?;
    if !state.store.delete_queue(id).await? {
        return Err(ApiError::NotFound(format!("annotation queue {id} not found")));
    }
    Ok(Json(json!({"deleted": id})))
}

async fn add(state: &AppState, raw: &str, runs: Vec<RunId>) -> Result<Json<Value>, ApiError> {
    let queue = queue_or_404(state, raw).await?;
    body::check_list("runs", runs.len(), state.limits.max_list_items, "limits.max_list_items")?;
    state.store.add_to_queue(queue.id, &runs, Timestamp::now()).await?;
    Ok(Json(json!({"added": runs})))
}

pub(super) async fn add_runs(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    headers: HeaderMap,
    b: Body,
) -> Result<Json<Value>, ApiError> {
    let bytes = body::read_json(&headers, b, state.limits).await?;
    let runs: Vec<RunId> = body::json(&bytes, "run ids")?;
    add(&state, &raw, runs).await
}

/// One of the SDK's `runs=[...]`: a run by its lookup key.
#[derive(Deserialize)]
struct RunKey {
    run_id: RunId,
}

pub(super) async fn add_runs_by_key(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    headers: HeaderMap,
    b: Body,
) -> Result<Json<Value>, ApiError> {
    let bytes = body::read_json(&headers, b, state.limits).await?;
    let keys: Vec<RunKey> = body::json(&bytes, "run keys")?;
    add(&state, &raw, keys.into_iter().map(|k| k.run_id).collect()).await
}

/// The runs of `entries`, rendered as the read API renders them, with their queue fields.
async fn entries_json(state: &AppState, entries: &[QueueEntry]) -> Result<Vec<Value>, ApiError> {
    let ids: Vec<RunId> = entries.iter().map(|e| e.run_id).collect();
    let runs = state.store.runs_by_ids(&ids).await?;
    let rendered = super::runs::render(state, &runs, None).await?;
    let mut by_id: std::collections::HashMap<String, Map<String, Value>> = rendered
        .into_iter()
        .map(|r| (r.get("id").and_then(Value::as_str).unwrap_or_default().to_string(), r))
        .collect();
    Ok(entries
        .iter()
        .filter_map(|e| {
            let mut run = by_id.remove(&e.run_id.to_string())?;
            run.insert("added_at".into(), json!(e.added_at.to_offset_string()));
            run.insert("last_reviewed_time".into(), json!(e.last_reviewed_time.map(|t| t.to_offset_string())));
            run.insert("queue_status".into(), json!(if e.done { "completed" } else { "needs_review" }));
            Some(Value::Object(run))
        })
        .collect())
}

pub(super) async fn list_runs(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let queue = queue_or_404(&state, &raw).await?;
    let pairs = query_pairs(q.as_deref(), &state.limits)?;
    let done = match pairs.iter().rev().find(|(k, _)| k == "status").map(|(_, v)| v.as_str()) {
        None => None,
        Some("needs_my_review" | "needs_review" | "needs_others_review") => Some(false),
        Some("completed") => Some(true),
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "status must be needs_my_review, needs_others_review or completed, got {other:?}"
            )));
        }
    };
    let limit = query_usize(&pairs, "limit", 100, 1000)?.max(1);
    let entries = state.store.queue_entries(queue.id, done, limit, query_offset(&pairs)?).await?;
    Ok(Json(Value::Array(entries_json(&state, &entries).await?)))
}

pub(super) async fn run_at(
    State(state): State<AppState>,
    Path((raw, index)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let queue = queue_or_404(&state, &raw).await?;
    let index: usize =
        index.parse().map_err(|_| ApiError::BadRequest(format!("index {index:?} is not a non-negative integer")))?;
    let entries = state.store.queue_entries(queue.id, Some(false), 1, index).await?;
    let mut found = entries_json(&state, &entries).await?;
    found.pop().map(Json).ok_or_else(|| {
        ApiError::NotFound(format!("annotation queue {} has no run to review at index {index}", queue.id))
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Review {
    done: bool,
}

pub(super) async fn review(
    State(state): State<AppState>,
    Path((raw, run)): Path<(String, String)>,
    headers: HeaderMap,
    b: Body,
) -> Result<Json<Value>, ApiError> {
    let queue = queue_or_404(&state, &raw).await?;
    let run: RunId = path_id("run id", &run)?;
    let bytes = body::read_json(&headers, b, state.limits).await?;
    let req: Review = body::json(&bytes, "review")?;
    if !state.store.mark_reviewed(queue.id, run, req.done, Timestamp::now()).await? {
        return Err(ApiError::NotFound(format!("run {run} is not in annotation queue {}", queue.id)));
    }
    Ok(Json(json!({"run_id": run, "done": req.done})))
}

pub(super) async fn remove_run(
    State(state): State<AppState>,
    Path((raw, run)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let queue = queue_or_404(&state, &raw).await?;
    let run: RunId = path_id("run id", &run)?;
    if !state.store.remove_from_queue(queue.id, run).await? {
        return Err(ApiError::NotFound(format!("run {run} is not in annotation queue {}", queue.id)));
    }
    Ok(Json(json!({"removed": run})))
}
