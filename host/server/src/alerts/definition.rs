//! Alert definitions: what a client says an alert is, checked in full.
//!
//! [`check`] turns an [`AlertDefinition`] whose project is resolved into
//! an [`AlertSpec`], or an error naming the field: a name, a metric (a
//! feedback metric with its key), a window of 1 to 60 minutes, at least
//! one threshold (warning before critical on the bad side), evaluation
//! every 10 to 60 seconds, reminders of at most a day, a filter that
//! parses. Webhook targets are checked as rules' are, by the caller that
//! saves the alert.

use runhook_core::model::SessionId;
use runhook_core::model::alert::{AlertDefinition, AlertSpec, Condition, Metric, defaults};

use crate::select::Selection;

/// Checks `d` for project `session_id`.
pub fn check(d: AlertDefinition, session_id: SessionId) -> Result<AlertSpec, String> {
    let display_name = d.display_name.map(|n| n.trim().to_string()).filter(|n| !n.is_empty());
    let display_name = display_name.ok_or("display_name is required")?;
    let metric = d.metric.ok_or(
        "metric is required: {\"kind\": \"run_count\" | \"error_count\" | \"error_rate\" | \"latency_p50\" | \
         \"latency_p95\" | \"latency_p99\" | \"total_tokens\" | \"total_cost\" | \"feedback_avg\" | \"feedback_count\"}",
    )?;
    if let Metric::FeedbackAvg { key } | Metric::FeedbackCount { key } = &metric
        && key.trim().is_empty()
    {
        return Err("metric.key: the feedback key is required".into());
    }
    let window_minutes = d.window_minutes.ok_or("window_minutes is required (1 to 60)")?;
    if !(1..=defaults::MAX_WINDOW_MINUTES).contains(&window_minutes) {
        return Err(format!("window_minutes must be between 1 and 60, got {window_minutes}"));
    }
    let condition = d.condition.unwrap_or(Condition::Above);
    for (field, t) in [("warning", d.warning), ("critical", d.critical)] {
        if t.is_some_and(|t| !t.is_finite()) {
            return Err(format!("{field} must be a finite number"));
        }
    }
    match (d.warning, d.critical) {
        (None, None) => return Err("a threshold is required: warning, critical or both".into()),
        (Some(w), Some(c)) if !condition.crossed(c, w) && w != c => {
            let side = if condition == Condition::Above { "above" } else { "below" };
            return Err(format!("critical ({c}) must be {side} warning ({w}), as the condition is {side}"));
        }
        _ => {}
    }
    let every = d.evaluate_every_seconds.unwrap_or(defaults::EVALUATE_EVERY_SECONDS);
    if !(defaults::MIN_EVALUATE_EVERY_SECONDS..=defaults::EVALUATE_EVERY_SECONDS).contains(&every) {
        return Err(format!("evaluate_every_seconds must be between 10 and 60, got {every}"));
    }
    let reminder_minutes = d.reminder_minutes.unwrap_or(defaults::REMINDER_MINUTES);
    if reminder_minutes > 1440 {
        return Err(format!("reminder_minutes must be between 0 (none) and 1440, got {reminder_minutes}"));
    }
    let filter = d.filter.filter(|f| !f.trim().is_empty());
    Selection::parse(filter.as_deref(), None, None).map_err(|e| e.to_string())?;
    Ok(AlertSpec {
        display_name,
        session_id,
        filter,
        metric,
        window_minutes,
        condition,
        warning: d.warning,
        critical: d.critical,
        no_data: d.no_data.unwrap_or_default(),
        evaluate_every_seconds: every,
        reminder_minutes,
        webhooks: d.webhooks.unwrap_or_default(),
        signing_secret: d.signing_secret,
        is_enabled: d.is_enabled.unwrap_or(true),
    })
}
