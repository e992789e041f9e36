//! Alert rules: a metric over a project's recent runs, compared with a
//! warning and a critical threshold, evaluated at least every minute.
//!
//! An alert watches one project (optionally only the runs a filter
//! selects) over a sliding window of 1 to 60 minutes, and computes one
//! [`Metric`]: a count, a rate, a latency percentile, a sum, or a feedback
//! key's average or count. Its [`Condition`] says which side of a
//! threshold is bad; crossing `warning` makes it warn, crossing `critical`
//! makes it critical. [`NoData`] says what a window with nothing to
//! measure means. What an alert does on each evaluation (its states and
//! notifications) is the server's `alerts` module; this is the definition.

use serde::{Deserialize, Serialize};

use super::ids::SessionId;
use super::rule::WebhookTarget;
use super::time::Timestamp;

/// What an alert measures over its window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Metric {
    /// Runs that started in the window.
    RunCount,
    /// Of those, runs with an error.
    ErrorCount,
    /// Errors over finished runs, 0 to 1.
    ErrorRate,
    /// Latency (end minus start) of finished runs, in seconds: the median.
    LatencyP50,
    /// ... the 95th percentile.
    LatencyP95,
    /// ... the 99th percentile.
    LatencyP99,
    /// Total tokens of the runs.
    TotalTokens,
    /// Total cost of the runs.
    TotalCost,
    /// The average score of feedback with `key` on the runs.
    FeedbackAvg {
        /// The feedback key.
        key: String,
    },
    /// How many pieces of feedback with `key` the runs have.
    FeedbackCount {
        /// The feedback key.
        key: String,
    },
}

impl Metric {
    /// Whether the metric is undefined on a window with nothing in it (a
    /// rate, a percentile or an average), rather than zero (a count, a sum).
    pub fn can_lack_data(&self) -> bool {
        matches!(
            self,
            Self::ErrorRate | Self::LatencyP50 | Self::LatencyP95 | Self::LatencyP99 | Self::FeedbackAvg { .. }
        )
    }
}

/// Which side of a threshold is bad.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    /// Bad when the value is above the threshold.
    Above,
    /// Bad when the value is below the threshold.
    Below,
}

impl Condition {
    /// Whether `value` is past `threshold` on the bad side.
    pub fn crossed(self, value: f64, threshold: f64) -> bool {
        match self {
            Self::Above => value > threshold,
            Self::Below => value < threshold,
        }
    }
}

/// What a window with nothing to measure (see [`Metric::can_lack_data`]) means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoData {
    /// Nothing is wrong: the alert is ok (an open incident resolves).
    #[default]
    Ignore,
    /// Something is wrong (nothing arrives): the alert is critical.
    Alert,
    /// Nothing is known: the alert stays as it was.
    Keep,
}

/// Defaults and bounds of an alert's fields.
pub mod defaults {
    /// The most minutes a window may span.
    pub const MAX_WINDOW_MINUTES: u32 = 60;
    /// Seconds between evaluations, by default and at most (every minute).
    pub const EVALUATE_EVERY_SECONDS: u32 = 60;
    /// The fewest seconds between evaluations.
    pub const MIN_EVALUATE_EVERY_SECONDS: u32 = 10;
    /// Minutes between reminders while the alert stays bad (0: none).
    pub const REMINDER_MINUTES: u32 = 60;
}

/// An alert's definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertSpec {
    /// A human name, in every notification.
    pub display_name: String,
    /// The project watched.
    pub session_id: SessionId,
    /// Only runs this filter selects (LangSmith's filter language).
    pub filter: Option<String>,
    /// What is measured.
    pub metric: Metric,
    /// The sliding window, in minutes (1 to 60).
    pub window_minutes: u32,
    /// Which side of the thresholds is bad.
    pub condition: Condition,
    /// Past this, the alert warns.
    pub warning: Option<f64>,
    /// Past this, the alert is critical.
    pub critical: Option<f64>,
    /// What a window with nothing to measure means.
    #[serde(default)]
    pub no_data: NoData,
    /// Seconds between evaluations (10 to 60).
    pub evaluate_every_seconds: u32,
    /// Minutes between reminders while it stays bad (0: none).
    pub reminder_minutes: u32,
    /// Where notifications go.
    pub webhooks: Vec<WebhookTarget>,
    /// A `whsec_...` secret to sign notifications (Standard Webhooks).
    pub signing_secret: Option<String>,
    /// Whether it is evaluated.
    pub is_enabled: bool,
}

/// How bad an alert is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// Within the thresholds.
    #[default]
    Ok,
    /// Past the warning threshold.
    Warning,
    /// Past the critical threshold.
    Critical,
}

/// What is kept between evaluations (stored, so a restart resumes it).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AlertState {
    /// The level now.
    pub level: Level,
    /// Incidents opened so far; while bad, the current one's number.
    pub incident: u64,
    /// When the current incident opened.
    pub bad_since: Option<Timestamp>,
    /// When the last notification was made.
    pub notified_at: Option<Timestamp>,
    /// The last value measured (`None`: no data).
    pub value: Option<f64>,
    /// When the last evaluation ran.
    pub evaluated_at: Option<Timestamp>,
}

/// An alert as written (API or config file); `None` means not given.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertDefinition {
    /// The alert's name.
    pub display_name: Option<String>,
    /// The project, by id.
    pub session_id: Option<SessionId>,
    /// The project, by name.
    #[serde(alias = "project_name")]
    pub session_name: Option<String>,
    /// Only runs this filter selects.
    pub filter: Option<String>,
    /// What is measured.
    pub metric: Option<Metric>,
    /// The window, in minutes.
    pub window_minutes: Option<u32>,
    /// Which side is bad (default `above`).
    pub condition: Option<Condition>,
    /// The warning threshold.
    pub warning: Option<f64>,
    /// The critical threshold.
    pub critical: Option<f64>,
    /// What no data means (default `ignore`).
    pub no_data: Option<NoData>,
    /// Seconds between evaluations.
    pub evaluate_every_seconds: Option<u32>,
    /// Minutes between reminders (0: none).
    pub reminder_minutes: Option<u32>,
    /// Where notifications go.
    pub webhooks: Option<Vec<WebhookTarget>>,
    /// A `whsec_...` signing secret.
    pub signing_secret: Option<String>,
    /// Whether it is evaluated.
    pub is_enabled: Option<bool>,
}

impl AlertDefinition {
    /// Reads a definition from JSON; an error names the field.
    pub fn from_value(v: serde_json::Value) -> Result<Self, String> {
        serde_path_to_error::deserialize(v).map_err(|e| {
            let path = e.path().to_string();
            let at = if path == "." { String::new() } else { format!(" at {path}") };
            format!("invalid alert{at}: {}", e.into_inner())
        })
    }
}
