//! PagerDuty: an Events API v2 event, to POST to
//! `https://events.pagerduty.com/v2/enqueue`.
//!
//! Follows PagerDuty's published payload documentation
//! (<https://developer.pagerduty.com/docs/send-alert-event>,
//! <https://developer.pagerduty.com/api-reference/368ae3d938c9e-send-an-event-to-pager-duty>):
//! - every event has `routing_key` (the integration key) and
//!   `event_action`: `trigger`, `acknowledge` or `resolve`;
//! - `dedup_key` (at most 255 characters) ties events to one alert: a
//!   `resolve` with the trigger's key resolves it, a second `trigger` with it
//!   adds to it rather than opening another;
//! - a `trigger` needs `payload.summary` (at most 1024 characters),
//!   `payload.source` and `payload.severity` (`critical`, `error`,
//!   `warning` or `info`); `timestamp`, `component`, `group`, `class` and
//!   `custom_details` are optional; `links` are `{href, text}`; `client` and
//!   `client_url` name the monitoring tool;
//! - a `resolve` needs only the key and `dedup_key`.
//!
//! An alert's notification maps as: `triggered` and `reminder` trigger,
//! `resolved` resolves, and the incident key is the `dedup_key`, so one
//! runhook incident is one PagerDuty alert from first notification to
//! resolution. A rule's payload triggers one event keyed by the rule and its
//! first run (a redelivery of it adds to the same alert), with the runs in
//! `custom_details`; LangSmith's rule-level `alerts: [{"type": "pagerduty",
//! ...}]` action is this.
//!
//! Config: `routing_key` (required), `severity` (overrides the severity:
//! an alert's level otherwise, `error` for runs), `summary` (replaces the
//! summary), `source` (default `runhook`), `base_url`, `title`.

use format_message::{Kind, Message, Severity, cut};
use runhook_plugin::{Transformer, Value, json};

/// PagerDuty's limits, from the pages above.
const SUMMARY_CHARS: usize = 1024;
const DEDUP_KEY_CHARS: usize = 255;
/// Runs carried in `custom_details`.
const RUNS: usize = 20;
const SEVERITIES: [&str; 4] = ["critical", "error", "warning", "info"];

struct PagerDuty;

impl Transformer for PagerDuty {
    fn transform(payload: Value, config: &Value) -> Result<Value, String> {
        let routing_key = match config["routing_key"].as_str().map(str::trim) {
            Some(k) if !k.is_empty() => k.to_string(),
            _ => return Err("config.routing_key is required: the PagerDuty integration key".into()),
        };
        let severity = match &config["severity"] {
            Value::Null => None,
            Value::String(s) if SEVERITIES.contains(&s.as_str()) => Some(s.clone()),
            other => return Err(format!("config.severity must be one of {SEVERITIES:?}, got {other}")),
        };
        let m = Message::read(&payload, config);
        Ok(render(&m, &payload, routing_key, severity, config))
    }
}

fn render(m: &Message, payload: &Value, routing_key: String, severity: Option<String>, config: &Value) -> Value {
    let (action, dedup_key, class) = match &m.kind {
        Kind::Alert { event, incident_key } => {
            (if event == "resolved" { "resolve" } else { "trigger" }, incident_key.clone(), "alert")
        }
        Kind::Runs { rule_id, first_run } => ("trigger", format!("runhook-rule-{rule_id}-{first_run}"), "runs"),
        Kind::Other => ("trigger", String::new(), "other"),
    };
    let mut event = json!({"routing_key": routing_key, "event_action": action, "client": "runhook"});
    if !dedup_key.is_empty() {
        event["dedup_key"] = json!(cut(&dedup_key, DEDUP_KEY_CHARS));
    }
    if let Some(link) = &m.link {
        event["client_url"] = json!(link);
        event["links"] = json!([{"href": link, "text": "Open in runhook"}]);
    }
    if action == "resolve" {
        return event;
    }
    let severity = severity.unwrap_or_else(|| {
        match (&m.kind, m.severity) {
            (Kind::Alert { .. }, Severity::Warning) => "warning",
            (Kind::Alert { .. }, _) => "critical",
            (_, Severity::Critical) => "error",
            _ => "info",
        }
        .to_string()
    });
    let summary = config["summary"].as_str().filter(|s| !s.trim().is_empty()).unwrap_or(&m.title);
    let mut details = serde_map(&m.facts);
    if !m.items.is_empty() {
        let runs: Vec<Value> =
            m.items.iter().take(RUNS).map(|i| json!({"run": i.title, "status": i.text, "link": i.link})).collect();
        details.insert("runs".into(), json!(runs));
        if m.items.len() > RUNS {
            details.insert("more_runs".into(), json!(m.items.len() - RUNS));
        }
    }
    if let Kind::Alert { .. } = m.kind {
        details.insert("value".into(), payload["value"].clone());
        details.insert("threshold".into(), payload["threshold"].clone());
    }
    let mut body = json!({
        "summary": cut(summary, SUMMARY_CHARS),
        "source": config["source"].as_str().unwrap_or("runhook"),
        "severity": severity,
        "class": class,
        "custom_details": details,
    });
    if let Some(time) = &m.time {
        body["timestamp"] = json!(time);
    }
    if let Some(metric) = payload["alert"]["metric"]["kind"].as_str() {
        body["component"] = json!(metric);
    }
    if let Some(project) = payload["alert"]["session_id"].as_str() {
        body["group"] = json!(project);
    }
    event["payload"] = body;
    event
}

fn serde_map(facts: &[(String, String)]) -> runhook_plugin::serde_json::Map<String, Value> {
    facts.iter().map(|(k, v)| (k.to_lowercase(), json!(v))).collect()
}

runhook_plugin::export!(PagerDuty: transformer);
