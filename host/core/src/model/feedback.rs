//! Feedback on runs: scores, categorical values and comments.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::ids::{FeedbackId, RunId, SessionId};
use super::time::Timestamp;

/// Where a piece of feedback came from (`api`, `model`, `app`, `auto_eval`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeedbackSource {
    /// The source type.
    #[serde(rename = "type", default = "api")]
    pub kind: String,
    /// Free-form details; evaluators record their own run under `__run`.
    #[serde(default)]
    pub metadata: Option<Value>,
    /// The user, for app feedback.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
}

fn api() -> String {
    "api".into()
}

impl FeedbackSource {
    /// Feedback written through the API.
    pub fn api() -> Self {
        Self { kind: api(), metadata: None, user_id: None }
    }

    /// Feedback written by an evaluator plugin.
    pub fn model(plugin: &str) -> Self {
        Self { kind: "model".into(), metadata: Some(serde_json::json!({"plugin": plugin})), user_id: None }
    }
}

/// Feedback as `POST /feedback` and multipart `feedback.{id}` parts carry it.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct FeedbackCreate {
    /// Client-chosen id (the SDK always sends one); generated when absent.
    pub id: Option<FeedbackId>,
    /// The run it is about; absent for project-level feedback.
    pub run_id: Option<RunId>,
    /// The run's trace.
    pub trace_id: Option<RunId>,
    /// The project, for project-level feedback.
    pub session_id: Option<SessionId>,
    /// The key, e.g. `user_score`. Required.
    pub key: Option<String>,
    /// A score: number or boolean.
    pub score: Option<Value>,
    /// A value: anything JSON.
    pub value: Option<Value>,
    /// A comment.
    pub comment: Option<String>,
    /// A correction: text or object.
    pub correction: Option<Value>,
    /// The source.
    pub feedback_source: Option<FeedbackSource>,
    /// When it was created, per the client.
    pub created_at: Option<Timestamp>,
    /// Extra data.
    pub extra: Option<Value>,
}

/// Stored feedback.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Feedback {
    /// Its id.
    pub id: FeedbackId,
    /// The run, or none for project-level feedback.
    pub run_id: Option<RunId>,
    /// The run's trace.
    pub trace_id: Option<RunId>,
    /// The project.
    pub session_id: Option<SessionId>,
    /// The key.
    pub key: String,
    /// The numeric score (booleans stored as 1 and 0).
    pub score: Option<f64>,
    /// The value.
    pub value: Option<Value>,
    /// The comment.
    pub comment: Option<String>,
    /// The correction.
    pub correction: Option<Value>,
    /// The source.
    pub feedback_source: FeedbackSource,
    /// Extra data.
    pub extra: Option<Value>,
    /// When created.
    pub created_at: Timestamp,
    /// When last changed.
    pub modified_at: Timestamp,
}

/// Why feedback cannot be stored.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("feedback: {0}")]
pub struct InvalidFeedback(pub String);

impl Feedback {
    /// Validates a create request into stored feedback.
    pub fn create(c: FeedbackCreate, now: Timestamp) -> Result<Self, InvalidFeedback> {
        let key = c.key.map(|k| k.trim().to_string()).filter(|k| !k.is_empty());
        let key = key.ok_or_else(|| InvalidFeedback("missing required field \"key\"".into()))?;
        if key.len() > 256 {
            return Err(InvalidFeedback("\"key\" is longer than 256 characters".into()));
        }
        let score = match c.score {
            None | Some(Value::Null) => None,
            Some(Value::Bool(b)) => Some(f64::from(u8::from(b))),
            Some(Value::Number(n)) => n.as_f64().filter(|f| f.is_finite()),
            Some(other) => {
                return Err(InvalidFeedback(format!("\"score\" must be a number or boolean, got {other}")));
            }
        };
        if c.run_id.is_none() && c.session_id.is_none() {
            return Err(InvalidFeedback("needs a \"run_id\" (or a \"session_id\" for project feedback)".into()));
        }
        Ok(Feedback {
            id: c.id.unwrap_or_else(FeedbackId::new_v4),
            run_id: c.run_id,
            trace_id: c.trace_id,
            session_id: c.session_id,
            key,
            score,
            value: c.value.filter(|v| !v.is_null()),
            comment: c.comment,
            correction: c.correction.filter(|v| !v.is_null()),
            feedback_source: c.feedback_source.unwrap_or_else(FeedbackSource::api),
            extra: c.extra.filter(|v| !v.is_null()),
            created_at: c.created_at.unwrap_or(now),
            modified_at: now,
        })
    }
}
