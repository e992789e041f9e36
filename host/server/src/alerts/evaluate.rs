//! One evaluation of a saved alert, and the loop that evaluates every
//! alert when it is due, on whichever replica holds it.
//!
//! An evaluation at `now` reads the project's runs that started in the
//! window (a page at a time, lean unless the filter needs inputs or
//! outputs), keeps those the alert's filter selects, adds them (and, for a
//! feedback metric, their feedback) to the metric, and takes the state
//! machine's step (see `state`). Its state and, when the step notifies,
//! one delivery per webhook of the notification (see [`notification`]),
//! rendered in the webhook's message format when it has one, commit together, over the state it read: a replica that evaluated the
//! same alert meanwhile makes this one commit nothing (`Conflict`), so a
//! notification is never sent twice. The loop evaluates an alert once
//! `evaluate_every_seconds` have passed since its last evaluation, while
//! this replica holds its singleton lease (`alert:<id>`, held for two
//! periods): one replica evaluates each alert, and a dead one's alerts are
//! taken over when their leases lapse.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::metric::Accumulator;
use super::read::{Pages, ReadError};
use super::state::{Notice, step};
use crate::plugins::{format_each, load_formats};
use runhook_core::model::{RuleId, Timestamp, WebhookTarget};
use runhook_plugins::PluginRegistry;
use runhook_store::{Alert, OutboxRow, Store, StoreError};
/// How often the loop looks for alerts due.
const TICK: Duration = Duration::from_secs(1);
/// How long the filter may take in one evaluation.
const FILTER_BUDGET: Duration = Duration::from_secs(30);

/// The metric of `alert` over the window ending at `now`.
pub async fn measure(store: &Arc<dyn Store>, alert: &Alert, now: Timestamp) -> Result<Option<f64>, ReadError> {
    let spec = &alert.spec;
    let from = Timestamp::from_datetime(now.as_datetime() - chrono::Duration::minutes(i64::from(spec.window_minutes)));
    let mut pages = Pages::new(store, spec, (from, now), usize::MAX, FILTER_BUDGET)?;
    let mut acc = Accumulator::new(&spec.metric);
    while let Some(page) = pages.next().await? {
        acc.add(&page.runs, &page.feedback);
    }
    Ok(acc.value())
}

/// Evaluates `alert` at `now` and commits what it decided; the
/// notification made, if any. `Conflict` when another evaluation of it
/// committed first.
pub async fn evaluate(
    store: &Arc<dyn Store>,
    plugins: &Arc<PluginRegistry>,
    alert: &Alert,
    now: Timestamp,
) -> Result<Option<Notice>, ReadError> {
    let value = measure(store, alert, now).await?;
    let (state, notice) = step(alert.id, &alert.spec, &alert.state, value, now);
    let rows: Vec<OutboxRow> = match &notice {
        None => Vec::new(),
        Some(n) => rows(plugins, alert, notification(alert, n, now).to_string()).await,
    };
    store.commit_evaluation(alert.id, alert.version, &state, &rows).await?;
    Ok(notice)
}

/// One delivery of `body` per webhook of `alert`, in the webhook's format.
/// A format that cannot render it leaves its webhook out, logged: the
/// evaluation still commits, or the alert would notify again and again.
async fn rows(plugins: &Arc<PluginRegistry>, alert: &Alert, body: String) -> Vec<OutboxRow> {
    let context = alert.id.to_string();
    let secrets: Vec<String> = alert.spec.signing_secret.iter().cloned().collect();
    let source = RuleId(alert.id.0);
    let mut rows = Vec::new();
    for (i, w) in alert.spec.webhooks.iter().enumerate() {
        let rendered = match w.format {
            None => Ok(body.clone()),
            Some(_) => format(plugins, w, &context, &body).await,
        };
        match rendered {
            Ok(body) => rows.push(OutboxRow::queued(source, w, body, secrets.clone())),
            Err(e) => {
                tracing::error!(alert = %alert.id, webhook = i, error = %e, "the webhook's format failed; not sent there");
                metrics::counter!("runhook_alert_format_failures_total").increment(1);
            }
        }
    }
    rows
}

/// `body` in the format of `webhook`.
async fn format(
    plugins: &Arc<PluginRegistry>,
    webhook: &WebhookTarget,
    context: &str,
    body: &str,
) -> Result<String, String> {
    let formats = load_formats(plugins, std::slice::from_ref(webhook)).await.map_err(|e| e.to_string())?;
    let mut out = format_each(plugins, &formats, context, &[body.to_string()]).await.map_err(|e| e.to_string())?;
    match out.pop().and_then(|mut bodies| bodies.pop()) {
        Some(rendered) => rendered.map_err(|e| e.to_string()),
        None => Err("the format returned nothing".into()),
    }
}

/// A notification as delivered (before any message format): the alert,
/// the change, the value against the threshold, the incident.
pub fn notification(alert: &Alert, n: &Notice, now: Timestamp) -> Value {
    let s = &alert.spec;
    json!({
        "type": "alert",
        "event": n.event,
        "level": n.to,
        "previous_level": n.from,
        "value": n.value,
        "threshold": n.threshold,
        "incident_key": n.incident_key,
        "incident_started": n.incident_started.to_offset_string(),
        "time": now.to_offset_string(),
        "alert": {
            "id": alert.id,
            "display_name": s.display_name,
            "session_id": s.session_id,
            "filter": s.filter,
            "metric": s.metric,
            "window_minutes": s.window_minutes,
            "condition": s.condition,
            "warning": s.warning,
            "critical": s.critical,
        },
        "app_path": format!("/ui/alerts/{}", alert.id),
    })
}

/// Evaluates every enabled alert when it is due, while replica `me` holds
/// it, until `shutdown`.
pub async fn run(store: Arc<dyn Store>, plugins: Arc<PluginRegistry>, me: String, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(TICK) => {}
        }
        let alerts = match store.list_alerts().await {
            Ok(a) => a,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the alerts");
                continue;
            }
        };
        let now = Timestamp::now();
        for alert in alerts.into_iter().filter(|a| a.spec.is_enabled && due(a, now)) {
            let every = Duration::from_secs(u64::from(alert.spec.evaluate_every_seconds));
            match store.hold_singleton(&format!("alert:{}", alert.id), &me, every * 2).await {
                Ok(true) => {}
                Ok(false) => continue, // another replica evaluates it
                Err(e) => {
                    tracing::error!(alert = %alert.id, error = %e, "cannot take the alert's lease");
                    continue;
                }
            }
            let started = std::time::Instant::now();
            let outcome = match evaluate(&store, &plugins, &alert, now).await {
                Ok(Some(n)) => {
                    tracing::info!(alert = %alert.id, event = ?n.event, level = ?n.to, value = ?n.value, "alert notification");
                    "notified"
                }
                Ok(None) => "ok",
                Err(ReadError::Store(StoreError::Conflict(_))) => "superseded",
                Err(e) => {
                    tracing::error!(alert = %alert.id, error = %e, "alert evaluation failed; retrying at the next tick");
                    "error"
                }
            };
            metrics::counter!("runhook_alert_evaluations_total", "outcome" => outcome).increment(1);
            metrics::histogram!("runhook_alert_evaluation_duration_seconds").record(started.elapsed().as_secs_f64());
        }
    }
}

/// Whether `alert` is due at `now`.
fn due(alert: &Alert, now: Timestamp) -> bool {
    alert.state.evaluated_at.is_none_or(|at| at.seconds_until(&now) >= f64::from(alert.spec.evaluate_every_seconds))
}
