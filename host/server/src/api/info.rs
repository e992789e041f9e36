//! `GET /info` (what the SDK probes before tracing), `/healthz`, `/readyz`.
//!
//! `/info` must be complete: the SDK's tracing thread dies on a
//! `batch_ingest_config` that lacks any of its keys, and it only queues
//! feedback in multipart batches when `version` is at least 0.8.10.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::AppState;

/// The LangSmith API version runhook implements, as `/info` reports it.
pub(crate) const LANGSMITH_API_VERSION: &str = "0.10.0";

pub(super) async fn info(State(state): State<AppState>) -> Json<Value> {
    Json(json!({
        "version": LANGSMITH_API_VERSION,
        "runhook_version": env!("CARGO_PKG_VERSION"),
        "license_expiration_time": null,
        "tenant_handle": null,
        "batch_ingest_config": {
            "use_multipart_endpoint": true,
            "scale_up_qsize_trigger": 1000,
            "scale_up_nthreads_limit": 16,
            "scale_down_nempty_trigger": 4,
            "size_limit": 100,
            "size_limit_bytes": state.limits.max_body_bytes.min(20 << 20),
        },
        "instance_flags": {
            "zstd_compression_enabled": true,
            "dataset_examples_multipart_enabled": false,
        },
    }))
}

/// Prometheus text format. The outbox gauges are read from the store at
/// scrape time; everything else is counted where it happens.
pub(super) async fn metrics(
    State(state): State<AppState>,
) -> (StatusCode, [(axum::http::HeaderName, &'static str); 1], String) {
    let content_type = [(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")];
    match super::health::render(&state).await {
        Some(text) => (StatusCode::OK, content_type, text),
        None => (StatusCode::NOT_FOUND, content_type, "metrics are not enabled in this process\n".into()),
    }
}

pub(super) async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

pub(super) async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    match state.store.ping().await {
        Ok(()) => (StatusCode::OK, Json(json!({"status": "ready"}))),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"status": "unavailable", "detail": "database not reachable"})),
            )
        }
    }
}
