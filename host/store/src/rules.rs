//! The rule engine's records: what the rules table, the per-(rule, run)
//! log and the outbox hold, and what one cycle commits.

use serde_json::Value;

use super::outbox::OutboxRow;
use runhook_core::model::{ActionOutcome, Feedback, RuleId, RunId, SessionId, Timestamp};

/// Where a rule stands: the change sequence processed and the window end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuleState {
    /// Runs with `seq` up to this have been considered.
    pub watermark: i64,
    /// When the last window ended (the next one starts here).
    pub window_end: Timestamp,
}

/// One line of a rule's log: what the rule did to one run.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleRunLog {
    /// The rule.
    pub rule_id: RuleId,
    /// The run.
    pub run_id: RunId,
    /// The run's name.
    pub run_name: String,
    /// The run's type.
    pub run_type: String,
    /// The run's project.
    pub session_id: SessionId,
    /// The run's thread.
    pub thread_id: Option<String>,
    /// The window the run was picked up in.
    pub window_start: Timestamp,
    /// See `window_start`.
    pub window_end: Timestamp,
    /// When the rule acted.
    pub applied_at: Timestamp,
    /// The webhook action's outcome.
    pub webhooks: Option<ActionOutcome>,
    /// The evaluator action's outcome.
    pub evaluators: Option<ActionOutcome>,
}

/// One cycle's result for one rule, committed atomically with the
/// watermark so a crash neither loses nor repeats a window.
#[derive(Debug, Clone)]
pub struct CycleCommit {
    /// The rule.
    pub rule_id: RuleId,
    /// The watermark the cycle started from (checked, to refuse a race).
    pub from_watermark: i64,
    /// The new watermark.
    pub to_watermark: i64,
    /// The window.
    pub window_start: Timestamp,
    /// See `window_start`.
    pub window_end: Timestamp,
    /// Runs considered.
    pub candidates: usize,
    /// What the rule did, per run.
    pub logs: Vec<RuleRunLog>,
    /// Webhook deliveries to queue.
    pub outbox: Vec<OutboxRow>,
    /// Feedback written by the evaluator.
    pub feedback: Vec<Feedback>,
    /// A cycle-level error, for the cycle history.
    pub error: Option<String>,
}

/// A summary line of one cycle.
#[derive(Debug, Clone, PartialEq)]
pub struct CycleSummary {
    /// Window start.
    pub window_start: Timestamp,
    /// Window end.
    pub window_end: Timestamp,
    /// Runs considered.
    pub candidates: i64,
    /// Runs acted on.
    pub actioned: i64,
    /// The cycle's error, if any.
    pub error: Option<String>,
}

/// Renders an outcome for storage.
pub fn outcome_json(o: &Option<ActionOutcome>) -> Option<String> {
    o.as_ref().and_then(|o| serde_json::to_string(o).ok())
}

/// Reads a stored outcome.
pub fn outcome_from(s: Option<String>) -> Option<ActionOutcome> {
    s.and_then(|s| serde_json::from_str::<ActionOutcome>(&s).ok())
}

/// The JSON value of a log line, as `GET /runs/rules/{id}/logs` returns it.
pub fn log_json(l: &RuleRunLog) -> Value {
    serde_json::json!({
        "rule_id": l.rule_id,
        "run_id": l.run_id,
        "run_name": l.run_name,
        "run_type": l.run_type,
        "run_session_id": l.session_id,
        "thread_id": l.thread_id,
        "start_time": l.window_start.to_offset_string(),
        "end_time": l.window_end.to_offset_string(),
        "application_time": l.applied_at.to_offset_string(),
        "webhooks": l.webhooks,
        "evaluators": l.evaluators,
    })
}
