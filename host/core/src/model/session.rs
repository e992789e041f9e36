//! Projects, which LangSmith's API calls tracing sessions.

use serde::Serialize;
use serde_json::Value;

use super::ids::SessionId;
use super::time::Timestamp;

/// A project: the scope runs are traced into and rules watch.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Session {
    /// Its id.
    pub id: SessionId,
    /// Its unique name (the SDK's `LANGSMITH_PROJECT`).
    pub name: String,
    /// A description.
    pub description: Option<String>,
    /// Free-form data.
    pub extra: Option<Value>,
    /// When it was created.
    pub start_time: Timestamp,
}
