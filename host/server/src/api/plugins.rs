//! The plugins API: `/plugins`, components uploaded so that every replica
//! can load them.
//!
//! `POST /plugins?name=...` takes a component's bytes as the body (at most
//! `plugins.max_file_bytes`), refuses anything that is not a component
//! exporting a runhook capability (400, with the reason), and stores it
//! under the SHA-256 of its bytes: 201 when new, 200 with the stored record
//! when those bytes were uploaded before. A rule then names it by
//! `"sha256"` in `plugins.match`, `plugins.transform` or
//! `plugins.evaluate`. `GET` lists plugins with their capabilities, size
//! and the rules using them; `DELETE` removes one no rule uses (409 naming
//! the rules otherwise).

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::error::ApiError;
use super::{AppState, body, query_pairs};
use runhook_core::model::PluginDigest;
use runhook_plugins::Capabilities;
use runhook_store::{PluginRemoval, PluginUpload, StoredPlugin};

/// Longest plugin name accepted.
const MAX_NAME: usize = 100;

fn view(p: &StoredPlugin) -> Value {
    json!({
        "sha256": p.digest,
        "name": p.name,
        "size": p.size,
        "capabilities": p.capabilities,
        "created_at": p.created_at.to_offset_string(),
        "rules": p.rules,
    })
}

fn digest(raw: &str) -> Result<PluginDigest, ApiError> {
    raw.parse().map_err(|e| ApiError::BadRequest(format!("plugin {raw:?}: {e}")))
}

fn name(pairs: &[(String, String)], digest: &PluginDigest) -> Result<String, ApiError> {
    let Some((_, name)) = pairs.iter().rev().find(|(k, _)| k == "name") else {
        return Ok(format!("plugin-{}", digest.short()));
    };
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME || name.chars().any(char::is_control) {
        return Err(ApiError::BadRequest(format!(
            "query parameter name: 1 to {MAX_NAME} characters, no control characters"
        )));
    }
    Ok(name.to_string())
}

pub(super) async fn upload(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
    b: Body,
) -> Result<Response, ApiError> {
    let pairs = query_pairs(raw.as_deref(), &state.limits)?;
    let max = usize::try_from(state.max_plugin_bytes).unwrap_or(usize::MAX);
    let bytes = body::read_raw(b, max, "plugins.max_file_bytes").await?;
    let digest = PluginDigest::of(&bytes);
    let name = name(&pairs, &digest)?;
    // Parsing the export names only: milliseconds, even for a large guest.
    let probe_name = name.clone();
    let wasm = bytes.clone();
    let capabilities =
        tokio::task::spawn_blocking(move || runhook_plugins::probe::probe(&probe_name, &wasm, Capabilities::default()))
            .await
            .map_err(|e| ApiError::Internal(Box::new(e)))?
            .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let upload = PluginUpload {
        digest,
        name,
        capabilities: capabilities.iter().map(|c| c.to_string()).collect(),
        bytes: bytes.to_vec(),
    };
    let (stored, created) = state.store.put_plugin(&upload).await?;
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    let mut response = (status, Json(view(&stored))).into_response();
    if let Ok(location) = HeaderValue::from_str(&format!("/api/v1/plugins/{}", stored.digest)) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

pub(super) async fn list(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let plugins = state.store.list_plugins().await?;
    Ok(Json(Value::Array(plugins.iter().map(view).collect())))
}

pub(super) async fn read(State(state): State<AppState>, Path(raw): Path<String>) -> Result<Json<Value>, ApiError> {
    let digest = digest(&raw)?;
    let stored = state.store.get_plugin(&digest).await?;
    let stored = stored.ok_or_else(|| ApiError::NotFound(format!("plugin {digest} not found")))?;
    Ok(Json(view(&stored)))
}

pub(super) async fn delete(State(state): State<AppState>, Path(raw): Path<String>) -> Result<StatusCode, ApiError> {
    let digest = digest(&raw)?;
    match state.store.delete_plugin(&digest).await? {
        PluginRemoval::Removed => Ok(StatusCode::NO_CONTENT),
        PluginRemoval::NotFound => Err(ApiError::NotFound(format!("plugin {digest} not found"))),
        PluginRemoval::InUse(rules) => {
            let rules: Vec<String> = rules.iter().map(ToString::to_string).collect();
            Err(ApiError::Conflict(format!(
                "plugin {digest} is used by rules {}; change or delete them first",
                rules.join(", ")
            )))
        }
    }
}
