//! The feedback an evaluator returns, serialised as the WIT contract says:
//! `{"key", "score"?, "value"?, "comment"?}`.

use serde::Serialize;
use serde_json::Value;

/// One piece of feedback on a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Feedback {
    /// The feedback key, e.g. `"answer_usefulness"`; required and non-empty.
    pub key: String,
    /// A numeric score, aggregated into `avg` in `feedback_stats`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
    /// A categorical value, counted in `values` in `feedback_stats`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
    /// A human-readable explanation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

impl Feedback {
    /// Feedback with a numeric score.
    pub fn score(key: impl Into<String>, score: f64) -> Self {
        Self { key: key.into(), score: Some(score), value: None, comment: None }
    }

    /// Feedback with a categorical value.
    pub fn value(key: impl Into<String>, value: impl Into<Value>) -> Self {
        Self { key: key.into(), score: None, value: Some(value.into()), comment: None }
    }

    /// Adds a comment.
    pub fn with_comment(mut self, comment: impl Into<String>) -> Self {
        self.comment = Some(comment.into());
        self
    }
}
