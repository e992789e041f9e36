//! The evaluation of a project's due alerts, and the loop that evaluates
//! every alert when it is due, on whichever replica holds its project.
//!
//! An evaluation at `now` reads the project's runs that started in the
//! longest window of its due alerts once (a page at a time, lean unless a
//! filter needs inputs or outputs); each alert keeps those of its own
//! window that its filter selects, adds them (and, for a feedback metric,
//! their feedback) to its metric, and takes the state machine's step (see
//! `state`). Its state and, when the step notifies, one delivery per
//! webhook of the notification (see [`notification`]), rendered in the
//! webhook's message format when it has one, commit together, over the
//! state it read: a replica that evaluated the same alert meanwhile makes
//! this one commit nothing (`Conflict`), so a notification is never sent
//! twice. An alert is due when its period (`evaluate_every_seconds`,
//! counted from the epoch) turns, so the alerts of one period are due
//! together and share the read. The loop evaluates a project's alerts
//! while this replica holds the project's lease (`alerts:<project>`, held
//! for two of its longest periods): one replica evaluates each project's
//! alerts, and a dead one's are taken over when their leases lapse.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::metric::Accumulator;
use super::read::{Pages, ReadError, Reads, needs_feedback};
use super::state::{Notice, step};
use crate::plugins::{call_each, load};
use crate::select::{Budget, Selection};
use runhook_core::model::{Feedback, RuleId, RunId, RunRecord, SessionId, Timestamp, WebhookTarget};
use runhook_plugins::{Capability, PluginRegistry, PluginSession};
use runhook_store::{Alert, OutboxRow, Store, StoreError};
/// How often the loop looks for alerts due.
const TICK: Duration = Duration::from_secs(1);
/// How long the filter may take in one evaluation.
const FILTER_BUDGET: Duration = Duration::from_secs(30);

/// The metric of each of `alerts` (one project's) over its window ending
/// at `now`, from one read of the project's runs over the longest window:
/// each alert keeps the runs of its own window that its filter selects. A
/// filter that cannot be evaluated fails its own alert only.
pub async fn measure(store: &Arc<dyn Store>, alerts: &[&Alert], now: Timestamp) -> Vec<Result<Option<f64>, ReadError>> {
    let Some(first) = alerts.first() else { return Vec::new() };
    let start = |a: &Alert| {
        Timestamp::from_datetime(now.as_datetime() - chrono::Duration::minutes(i64::from(a.spec.window_minutes)))
    };
    let mut each: Vec<Result<(Selection, Budget, Accumulator<'_>), ReadError>> = alerts
        .iter()
        .map(|a| {
            let selection = Selection::parse(a.spec.filter.as_deref(), None, None)?;
            Ok((selection, Budget::within(FILTER_BUDGET), Accumulator::new(&a.spec.metric)))
        })
        .collect();
    let reads = Reads {
        io: each.iter().any(|e| e.as_ref().is_ok_and(|(s, _, _)| s.needs_io())),
        feedback: alerts.iter().any(|a| needs_feedback(&a.spec.metric)),
    };
    let from = alerts.iter().map(|a| start(a)).min().unwrap_or(now);
    let mut pages = Pages::project(store, first.spec.session_id, reads, (from, now), FILTER_BUDGET);
    loop {
        let page = match pages.next().await {
            Ok(Some(page)) => page,
            Ok(None) => break,
            Err(e) => {
                // The shared read failed: every alert of it did.
                let text = e.to_string();
                return alerts.iter().map(|_| Err(ReadError::Shared(text.clone()))).collect();
            }
        };
        let runs: Vec<Arc<RunRecord>> = page.runs.into_iter().map(Arc::new).collect();
        let mut feedback: HashMap<RunId, Vec<Feedback>> = HashMap::new();
        for f in page.feedback {
            if let Some(run) = f.run_id {
                feedback.entry(run).or_default().push(f);
            }
        }
        for (alert, state) in alerts.iter().zip(each.iter_mut()) {
            let Ok((selection, budget, acc)) = state else { continue };
            let from = start(alert);
            let mine: Vec<Arc<RunRecord>> = runs.iter().filter(|r| r.start_time >= from).cloned().collect();
            match selection.retain(store.as_ref(), mine, budget).await {
                Ok(kept) => {
                    let theirs: Vec<Feedback> =
                        kept.iter().flat_map(|r| feedback.get(&r.id).into_iter().flatten().cloned()).collect();
                    acc.add(&kept, &theirs);
                }
                Err(e) => *state = Err(e.into()),
            }
        }
    }
    each.into_iter().map(|e| e.map(|(_, _, acc)| acc.value())).collect()
}

/// Evaluates `alerts` (one project's) at `now`, over one read of its runs
/// (see [`measure`]), and commits what each decided; the notification
/// each made, if any. `Conflict` for an alert another evaluation of it
/// committed first.
pub async fn evaluate(
    store: &Arc<dyn Store>,
    plugins: &Arc<PluginRegistry>,
    alerts: &[&Alert],
    now: Timestamp,
) -> Vec<Result<Option<Notice>, ReadError>> {
    let values = measure(store, alerts, now).await;
    let mut out = Vec::with_capacity(alerts.len());
    for (alert, value) in alerts.iter().zip(values) {
        out.push(match value {
            Ok(value) => commit(store, plugins, alert, value, now).await,
            Err(e) => Err(e),
        });
    }
    out
}

/// The state machine's step for `alert` at `value`, committed with its
/// notification's deliveries over the version read.
async fn commit(
    store: &Arc<dyn Store>,
    plugins: &Arc<PluginRegistry>,
    alert: &Alert,
    value: Option<f64>,
    now: Timestamp,
) -> Result<Option<Notice>, ReadError> {
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
        let rendered = format(plugins, w, &context, &body).await;
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

/// `body` in the format of `webhook` (as is when it has none).
async fn format(
    plugins: &Arc<PluginRegistry>,
    webhook: &WebhookTarget,
    context: &str,
    body: &str,
) -> Result<String, String> {
    let Some(format) = load(plugins, &webhook.format, Capability::Transform).await.map_err(|e| e.to_string())? else {
        return Ok(body.to_string());
    };
    let texts = vec![body.to_string()];
    let mut out = call_each(plugins, &format, context, texts, Capability::Transform, PluginSession::transform)
        .await
        .map_err(|e| e.to_string())?;
    match out.pop() {
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

/// Evaluates every enabled alert when it is due, a project's alerts
/// together, while replica `me` holds the project's alerts lease, until
/// `shutdown`.
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
        let mut projects: BTreeMap<SessionId, Vec<&Alert>> = BTreeMap::new();
        for alert in alerts.iter().filter(|a| a.spec.is_enabled) {
            projects.entry(alert.spec.session_id).or_default().push(alert);
        }
        for (project, all) in projects {
            let due: Vec<&Alert> = all.iter().copied().filter(|a| due(a, now)).collect();
            if due.is_empty() {
                continue;
            }
            // Held for two of the longest periods: renewed at every round of
            // the project, lapsed soon after its holder dies.
            let longest = all.iter().map(|a| a.spec.evaluate_every_seconds).max().unwrap_or(60);
            let hold = Duration::from_secs(u64::from(longest) * 2);
            match store.hold_singleton(&format!("alerts:{project}"), &me, hold).await {
                Ok(true) => {}
                Ok(false) => continue, // another replica evaluates them
                Err(e) => {
                    tracing::error!(project = %project, error = %e, "cannot take the project's alerts lease");
                    continue;
                }
            }
            let started = std::time::Instant::now();
            // A round of many alerts is long; shutting down does not wait
            // for it (each commit is whole or absent, so stopping between
            // or within them loses nothing the next round does not redo).
            let results = tokio::select! {
                _ = shutdown.cancelled() => return,
                results = evaluate(&store, &plugins, &due, now) => results,
            };
            for (alert, result) in due.iter().zip(results) {
                let outcome = match result {
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
            }
            metrics::histogram!("runhook_alert_round_duration_seconds").record(started.elapsed().as_secs_f64());
            metrics::histogram!("runhook_alert_round_alerts").record(due.len() as f64);
        }
    }
}

/// Whether `alert` is due at `now`: its period, counted from the epoch,
/// changed since its last evaluation. Alerts of one period are due
/// together, so a project's are evaluated over one read.
fn due(alert: &Alert, now: Timestamp) -> bool {
    let every = i64::from(alert.spec.evaluate_every_seconds.max(1));
    let period = |t: &Timestamp| t.as_datetime().timestamp().div_euclid(every);
    alert.state.evaluated_at.is_none_or(|at| period(&now) > period(&at))
}
