//! What went wrong in the store, in the store's terms.
//!
//! No driver type appears here: a backend folds its driver's errors into
//! [`StoreError::Unavailable`] or [`StoreError::Backend`], with the driver's
//! error as the boxed source, so callers above the store (the API's status
//! mapping, the workers' logs) never depend on a backend.

use runhook_core::model::run::InvalidRun;
use runhook_core::model::{DatasetId, QueueId, RuleId, RunId};

/// A backend's own error, boxed so that no driver type crosses the store's surface.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// An error from the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A run a write refers to does not exist.
    #[error("run {0} not found")]
    RunNotFound(RunId),
    /// A rule does not exist.
    #[error("rule {0} not found")]
    RuleNotFound(RuleId),
    /// A dataset a write refers to does not exist.
    #[error("dataset {0} not found")]
    DatasetNotFound(DatasetId),
    /// An annotation queue a write refers to does not exist.
    #[error("annotation queue {0} not found")]
    QueueNotFound(QueueId),
    /// A project a write or read refers to does not exist.
    #[error("project {0} not found")]
    SessionNotFound(String),
    /// The write would break an invariant (a duplicate name, an id reused,
    /// a watermark that moved, a delivery still pending).
    #[error("{0}")]
    Conflict(String),
    /// The write carries an invalid run.
    #[error(transparent)]
    InvalidRun(#[from] InvalidRun),
    /// A value the database cannot hold (Postgres refuses text with a NUL
    /// character); what and, where known, where.
    #[error("{0}")]
    Unstorable(String),
    /// The database is not reachable or cannot serve now (a pool timed
    /// out, a connection was lost, the file is busy); the call may succeed
    /// later.
    #[error("database unavailable: {0}")]
    Unavailable(#[source] BoxError),
    /// The database failed (a driver error, a failed migration, a panicked
    /// batch); the source says how.
    #[error("database error: {0}")]
    Backend(#[source] BoxError),
    /// The data directory cannot be used.
    #[error("data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A stored value could not be decoded (a corrupt or foreign database).
    #[error("corrupt stored value in {column}: {detail}")]
    Corrupt {
        /// Where.
        column: &'static str,
        /// What.
        detail: String,
    },
}

impl StoreError {
    /// A stored value of `column` that could not be decoded.
    pub fn corrupt(column: &'static str, detail: impl std::fmt::Display) -> Self {
        Self::Corrupt { column, detail: detail.to_string() }
    }
}
