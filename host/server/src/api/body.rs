//! Reading request bodies: the size limit as sent, then the wire formats'
//! own checks (`runhook_wire::body`: decompression up to a size, a count
//! of JSON values, JSON errors that name the offending path).

use axum::body::Body;
use axum::http::HeaderMap;
use axum::http::header::CONTENT_ENCODING;
use bytes::Bytes;

use super::error::ApiError;
use crate::config::Limits;
pub(crate) use runhook_wire::body::json;

/// Reads the whole body, enforcing the limits and undoing `Content-Encoding`.
pub(crate) async fn read(headers: &HeaderMap, body: Body, limits: Limits) -> Result<Bytes, ApiError> {
    let raw = read_raw(body, limits.max_body_bytes, "limits.max_body_bytes").await?;
    let encoding = headers.get(CONTENT_ENCODING).map(|v| v.to_str().unwrap_or("?"));
    Ok(runhook_wire::body::decompress(encoding, raw, limits.max_decompressed_bytes)?)
}

/// [`read`], for a body that is one JSON text: refused up front when it
/// holds more values than `limits.max_json_values`.
pub(crate) async fn read_json(headers: &HeaderMap, body: Body, limits: Limits) -> Result<Bytes, ApiError> {
    let bytes = read(headers, body, limits).await?;
    runhook_wire::body::check_values(&bytes, || "the body".into(), &mut 0, limits.max_json_values)?;
    Ok(bytes)
}

/// Reads the whole body as sent, refusing one over `max` bytes (naming
/// `setting`, the limit's setting).
pub(crate) async fn read_raw(body: Body, max: usize, setting: &str) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(body, max).await.map_err(|e| {
        if is_length_limit(&e) {
            ApiError::TooLarge(format!("request body exceeds the limit of {max} bytes ({setting})"))
        } else {
            ApiError::BadRequest(format!("cannot read request body: {e}"))
        }
    })
}

fn is_length_limit(e: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if err.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = err.source();
    }
    false
}

/// Refuses a list longer than `max`, naming it and the limit's setting.
pub(crate) fn check_list(what: &str, len: usize, max: usize, setting: &str) -> Result<(), ApiError> {
    if len > max {
        return Err(ApiError::BadRequest(format!("{what} has {len} items; at most {max} are accepted ({setting})")));
    }
    Ok(())
}

/// A positive integer field of a JSON request body: `default` when absent
/// or null, otherwise 1 to `max`, or a 400 naming the field.
pub(super) fn int_field(
    body: &serde_json::Map<String, serde_json::Value>,
    key: &str,
    default: u64,
    max: u64,
) -> Result<u64, ApiError> {
    match body.get(key) {
        None | Some(serde_json::Value::Null) => Ok(default),
        Some(v) => match v.as_u64() {
            Some(n) if (1..=max).contains(&n) => Ok(n),
            _ => Err(ApiError::BadRequest(format!("{key} must be an integer between 1 and {max}, got {v}"))),
        },
    }
}
