//! The one place an error becomes an HTTP status and body.
//!
//! Client mistakes get a 4xx and a `{"detail": "..."}` body (LangSmith's
//! shape) that says what is wrong and where. Internal failures get a bare
//! 500; their cause goes to the log, never to the client.

use axum::Json;
use axum::extract::Request;
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use runhook_store::StoreError;
use runhook_wire::WireError;

/// An error answered to an API client.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed (bad JSON, wrong type, bad multipart, bad id).
    #[error("{0}")]
    BadRequest(String),
    /// The request is well-formed but its content is invalid.
    #[error("{0}")]
    Unprocessable(String),
    /// No or a wrong `x-api-key`.
    #[error("missing or invalid x-api-key header")]
    Unauthorized,
    /// Authenticated, but the request may not proceed (a dashboard change without its CSRF token).
    #[error("{0}")]
    Forbidden(String),
    /// The thing asked for does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The write conflicts with what is stored.
    #[error("{0}")]
    Conflict(String),
    /// The body is larger than allowed.
    #[error("{0}")]
    TooLarge(String),
    /// The body's encoding is not supported.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The database cannot serve now; the client may retry.
    #[error("the store is unavailable; retry later")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// Something failed on our side.
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl ApiError {
    fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::RunNotFound(id) => ApiError::NotFound(format!("run {id} not found")),
            StoreError::DatasetNotFound(id) => ApiError::NotFound(format!("dataset {id} not found")),
            StoreError::QueueNotFound(id) => ApiError::NotFound(format!("annotation queue {id} not found")),
            StoreError::SessionNotFound(s) => ApiError::NotFound(format!("project {s} not found")),
            StoreError::Conflict(m) => ApiError::Conflict(m),
            StoreError::InvalidRun(e) => ApiError::Unprocessable(e.to_string()),
            StoreError::Unstorable(m) => ApiError::Unprocessable(m),
            StoreError::Unavailable(cause) => ApiError::Unavailable(cause),
            other => ApiError::Internal(Box::new(other)),
        }
    }
}

impl From<WireError> for ApiError {
    fn from(e: WireError) -> Self {
        match e {
            WireError::Malformed(m) => ApiError::BadRequest(m),
            WireError::TooLarge(m) => ApiError::TooLarge(m),
            WireError::Unsupported(m) => ApiError::UnsupportedMediaType(m),
            WireError::Invalid(m) => ApiError::Unprocessable(m),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        match &self {
            ApiError::Internal(cause) => tracing::error!(error = %cause, "request failed"),
            ApiError::Unavailable(cause) => tracing::warn!(error = %cause, "request failed: the store is unavailable"),
            _ => {}
        }
        let mut response = (status, Json(json!({"detail": self.to_string()}))).into_response();
        if let ApiError::TooLarge(_) = self {
            // The rest of the body was never read, so the connection cannot
            // carry another request; say so, or a keep-alive client reuses it.
            response
                .headers_mut()
                .insert(axum::http::header::CONNECTION, axum::http::HeaderValue::from_static("close"));
        }
        response
    }
}

/// Most headers a request may carry.
pub const MAX_HEADERS: usize = 100;
/// Most bytes of header names and values together.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;
/// Longest request target (path and query).
pub const MAX_URI_BYTES: usize = 16 * 1024;

/// Refuses a request whose head is larger than the API accepts, with a
/// JSON 431 or 414 (hyper answers a bare 431 only past its own larger
/// ceilings, set in `listen`).
pub(super) async fn header_limits(request: Request, next: Next) -> Response {
    let uri = request.uri().to_string().len();
    if uri > MAX_URI_BYTES {
        let detail = format!("the request target is {uri} bytes; at most {MAX_URI_BYTES} are accepted");
        return (StatusCode::URI_TOO_LONG, Json(json!({"detail": detail}))).into_response();
    }
    let headers = request.headers();
    let bytes: usize = headers.iter().map(|(k, v)| k.as_str().len() + v.len()).sum();
    if headers.len() > MAX_HEADERS || bytes > MAX_HEADER_BYTES {
        let detail = format!(
            "the request has {} headers of {bytes} bytes; at most {MAX_HEADERS} headers of {MAX_HEADER_BYTES} bytes are accepted",
            headers.len()
        );
        return (StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, Json(json!({"detail": detail}))).into_response();
    }
    next.run(request).await
}

/// Gives every error response the `{"detail": ...}` body, including those
/// no handler wrote: axum's own rejections (a path segment that is not
/// valid UTF-8 once decoded), 405 for a known path with another method,
/// and the panic catcher's 500 (whose detail stays "internal error").
pub(super) async fn json_errors(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response.headers().get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes() == b"application/json");
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 4096).await.map(|b| String::from_utf8_lossy(&b).trim().to_string());
    let detail = match status {
        StatusCode::METHOD_NOT_ALLOWED => {
            let allowed = parts.headers.get(header::ALLOW).and_then(|v| v.to_str().ok()).unwrap_or_default();
            format!("method {method} is not allowed on {path}; allowed: {allowed}")
        }
        StatusCode::INTERNAL_SERVER_ERROR => "internal error".to_string(),
        _ => match text {
            Ok(text) if !text.is_empty() => text,
            _ => status.canonical_reason().unwrap_or("error").to_string(),
        },
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/json"));
    Response::from_parts(parts, axum::body::Body::from(json!({"detail": detail}).to_string()))
}
