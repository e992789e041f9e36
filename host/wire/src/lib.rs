//! runhook's request formats, decoded within stated bounds: what a client
//! sends, before any of it is stored.
//!
//! - [`body`]: `Content-Encoding` (zstd, every gzip member) undone up to a
//!   size; JSON parsed with the path of the first problem, bytes after the
//!   value refused, and the values counted before anything is built;
//! - [`batch`]: LangSmith's `POST /runs/batch` body, each run sized as raw
//!   text before it is parsed;
//! - [`multipart`]: LangSmith's `POST /runs/multipart` body.
//!
//! Every function is pure (bytes in, values or a [`WireError`] out) and
//! names what is wrong and where, so the API turns it into a 4xx as is.
//! This crate depends on the model and the store's records only, not on
//! the HTTP stack or the plugin host, so its fuzz targets (`host/fuzz`)
//! build in a minute.

pub mod batch;
pub mod body;
pub mod multipart;

/// The bounds a request body is decoded within.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WireLimits {
    /// Largest body after decompression.
    pub max_decompressed_bytes: usize,
    /// Largest run: its JSON, or the sum of its multipart parts.
    pub max_run_bytes: usize,
    /// Most JSON values (and keys) in one request.
    pub max_json_values: usize,
    /// Most runs (posts and patches) in one request.
    pub max_runs_per_request: usize,
}

/// Why a body cannot be used, by the status a client should get.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// Malformed: bad JSON, a wrong type, a bad part, corrupt compression.
    #[error("{0}")]
    Malformed(String),
    /// Larger than a stated limit (the message names the setting).
    #[error("{0}")]
    TooLarge(String),
    /// An encoding this server does not speak.
    #[error("{0}")]
    Unsupported(String),
    /// Well-formed, but its content is invalid (feedback that cannot be).
    #[error("{0}")]
    Invalid(String),
}
