//! Projects: `GET /sessions` (by name, by id), `GET /sessions/{id}`,
//! `POST /sessions`.
//!
//! The SDK resolves a project name with `GET /sessions?name=<n>&limit=1`
//! and expects a list; its model needs `tenant_id` and
//! `reference_dataset_id` keys on every project.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::ApiError;
use super::{AppState, body, path_id, query_offset, query_pairs, query_usize};
use runhook_core::model::{Session, SessionId, Timestamp};
use runhook_store::{SessionQuery, StoreError};

fn view(state: &AppState, s: &Session) -> Value {
    json!({
        "id": s.id,
        "name": s.name,
        "description": s.description,
        "extra": s.extra,
        "start_time": s.start_time,
        "end_time": null,
        "tenant_id": state.store.tenant_id(),
        "reference_dataset_id": null,
        "default_dataset_id": null,
    })
}

pub(super) async fn list(State(state): State<AppState>, RawQuery(raw): RawQuery) -> Result<Json<Value>, ApiError> {
    let pairs = query_pairs(raw.as_deref(), &state.limits)?;
    let mut q = SessionQuery {
        limit: query_usize(&pairs, "limit", 100, 1000)?.max(1),
        offset: query_offset(&pairs)?,
        ..SessionQuery::default()
    };
    for (k, v) in &pairs {
        match k.as_str() {
            "name" => q.name = Some(v.clone()),
            "name_contains" => q.name_contains = Some(v.clone()),
            "id" => q.ids.push(path_id::<SessionId>("project id", v)?),
            _ => {}
        }
    }
    let sessions = state.store.list_sessions(&q).await?;
    Ok(Json(Value::Array(sessions.iter().map(|s| view(&state, s)).collect())))
}

pub(super) async fn read(State(state): State<AppState>, Path(raw): Path<String>) -> Result<Json<Value>, ApiError> {
    let id: SessionId = path_id("project id", &raw)?;
    let s = state.store.get_session(id).await?.ok_or_else(|| ApiError::NotFound(format!("project {id} not found")))?;
    Ok(Json(view(&state, &s)))
}

#[derive(Debug, Deserialize)]
struct CreateBody {
    name: String,
    #[serde(default)]
    id: Option<SessionId>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    extra: Option<Value>,
    #[serde(default)]
    start_time: Option<Timestamp>,
}

pub(super) async fn create(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let upsert = query_pairs(raw.as_deref(), &state.limits)?.iter().any(|(k, v)| k == "upsert" && v == "true");
    let bytes = body::read_json(&headers, body, state.limits).await?;
    let b: CreateBody = body::json(&bytes, "project")?;
    let name = b.name.trim().to_string();
    if name.is_empty() || name.len() > 512 {
        return Err(ApiError::Unprocessable("project name must be 1 to 512 characters".into()));
    }
    let session = Session {
        id: b.id.unwrap_or_else(SessionId::new_v4),
        name: name.clone(),
        description: b.description,
        extra: b.extra.filter(|e| !e.is_null()),
        start_time: b.start_time.unwrap_or_else(Timestamp::now),
    };
    match state.store.create_session(session).await {
        Ok(s) => Ok(Json(view(&state, &s))),
        Err(StoreError::Conflict(_)) if upsert => {
            let q = SessionQuery { name: Some(name), limit: 1, ..SessionQuery::default() };
            let existing = state.store.list_sessions(&q).await?;
            let s = existing.first().ok_or_else(|| ApiError::Conflict("project id already in use".into()))?;
            Ok(Json(view(&state, s)))
        }
        Err(e) => Err(e.into()),
    }
}
