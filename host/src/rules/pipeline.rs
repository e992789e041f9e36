//! One rule cycle: window -> candidates -> filters -> match plugin ->
//! sampling -> actions (webhook, then evaluator) -> one commit.
//!
//! The window is the change sequence from the rule's watermark to the
//! store's current value. Candidates are read in pages (oldest change
//! first); each page is committed on its own, with the watermark moved to
//! its last run, the rule log, the outbox rows and the evaluator's
//! feedback, all in one transaction. A crash therefore repeats at most the
//! page in progress, which committed nothing, and never loses one.
//!
//! A run is acted on at most once per rule (the rule log is keyed by rule
//! and run): a run that gains feedback re-enters the window and may newly
//! match, but one already sent is not sent again. A plugin that fails on a
//! run fails that run's action, recorded in the log; the cycle goes on.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::sample::sampled;
use crate::model::{
    ActionOutcome, DeliveryId, Feedback, FeedbackId, FeedbackSource, PluginRef, Rule, RunRecord, Timestamp,
};
use crate::payload::{self, RenderedRun};
use crate::plugins::{Capabilities, Capability, PluginError, PluginHandle, PluginLimits, PluginRegistry, PluginSpec};
use crate::select::{Selection, SelectionError};
use crate::store::{CycleCommit, OutboxRow, RuleRunLog, Store, StoreError};

/// Candidates read and committed per step.
pub const PAGE: usize = 1000;

/// Why a cycle could not run.
#[derive(Debug, thiserror::Error)]
pub enum CycleError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A filter no longer parses.
    #[error("invalid filter: {0}")]
    Filter(#[from] SelectionError),
    /// A plugin could not be loaded.
    #[error(transparent)]
    Plugin(#[from] PluginError),
    /// A plugin worker thread died.
    #[error("plugin worker failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// What a cycle did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CycleReport {
    /// Runs considered (changed in the window, finished).
    pub candidates: usize,
    /// Runs that passed filters, match plugin and sampling.
    pub actioned: usize,
    /// Webhook deliveries queued.
    pub deliveries: usize,
}

/// Runs one cycle of `rule`.
pub async fn run_cycle(
    store: &Arc<dyn Store>,
    plugins: &Arc<PluginRegistry>,
    rule: &Rule,
) -> Result<CycleReport, CycleError> {
    let Some(state) = store.rule_state(rule.id).await? else {
        return Ok(CycleReport::default()); // deleted meanwhile
    };
    let upto = store.change_seq().await?;
    let window_start = state.window_end;
    let window_end = Timestamp::now();
    let spec = &rule.spec;
    let selection =
        Selection::parse(spec.filter.as_deref(), spec.trace_filter.as_deref(), spec.tree_filter.as_deref())?;
    let matcher = load(plugins, &spec.plugins.matcher, Capability::Match).await?;
    let transformer = load(plugins, &spec.plugins.transform, Capability::Transform).await?;
    let evaluator = load(plugins, &spec.plugins.evaluate, Capability::Evaluate).await?;

    let mut report = CycleReport::default();
    let mut after = state.watermark;
    loop {
        let candidates = store.cycle_candidates(rule, after, upto, PAGE).await?;
        let last_page = candidates.len() < PAGE;
        let to = if last_page { upto.max(after) } else { candidates.last().map_or(upto, |r| r.seq) };
        let n = candidates.len();
        let ids: Vec<_> = candidates.iter().map(|r| r.id).collect();
        let done = store.actioned(rule.id, &ids).await?;
        let fresh: Vec<RunRecord> = candidates.into_iter().filter(|r| !done.contains(&r.id)).collect();
        let selected = selection.retain(store.as_ref(), fresh).await?;
        let rendered = payload::render(store.as_ref(), &selected).await?;

        // The match plugin, then sampling.
        let mut logs: Vec<RuleRunLog> = Vec::new();
        let mut chosen: Vec<RenderedRun> = Vec::new();
        let verdicts = match &matcher {
            Some((handle, r)) => Some(call_each(plugins, handle, r, rule, &rendered, Capability::Match).await?),
            None => None,
        };
        for (i, run) in rendered.into_iter().enumerate() {
            let record = &selected[i];
            match verdicts.as_ref().map(|v| &v[i]) {
                Some(Err(e)) => {
                    logs.push(log(
                        rule,
                        record,
                        window_start,
                        window_end,
                        Some(ActionOutcome::error(format!("match plugin: {e}"))),
                        None,
                    ));
                    continue;
                }
                Some(Ok(Value::Bool(false))) => continue,
                _ => {}
            }
            if sampled(rule.id, run.id, spec.sampling_rate) {
                chosen.push(run);
            }
        }

        // Webhook: payloads, transform plugin, outbox rows.
        let mut outbox: Vec<OutboxRow> = Vec::new();
        let mut webhook_outcome: std::collections::HashMap<crate::model::RunId, ActionOutcome> = Default::default();
        if !spec.webhooks.is_empty() && !chosen.is_empty() {
            let parts = payload::payloads(rule.id, window_start, window_end, &chosen, spec.max_runs_per_payload);
            let bodies: Vec<Result<String, String>> = match &transformer {
                Some((handle, r)) => {
                    let as_runs: Vec<RenderedRun> = parts
                        .iter()
                        .map(|p| RenderedRun {
                            id: p.run_ids[0],
                            json: p.body.as_object().cloned().unwrap_or_default(),
                            feedback: vec![],
                        })
                        .collect();
                    call_each(plugins, handle, r, rule, &as_runs, Capability::Transform)
                        .await?
                        .into_iter()
                        .map(|r| {
                            r.map(|v| v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string()))
                                .map_err(|e| e.to_string())
                        })
                        .collect()
                }
                None => parts.iter().map(|p| Ok(p.body.to_string())).collect(),
            };
            for (part, body) in parts.iter().zip(bodies) {
                match body {
                    Ok(body) => {
                        let mut ids = Vec::new();
                        for target in &spec.webhooks {
                            let id = DeliveryId::new_v7();
                            ids.push(id);
                            outbox.push(OutboxRow {
                                id,
                                rule_id: rule.id,
                                url: target.url.clone(),
                                headers: target.headers.clone().unwrap_or_default(),
                                body: body.clone(),
                                run_ids: part.run_ids.clone(),
                                signing_secret: spec.signing_secret.clone(),
                                created_at: Timestamp::now(),
                                attempts: 0,
                            });
                        }
                        for run in &part.run_ids {
                            webhook_outcome.insert(*run, ActionOutcome::pending(json!({"delivery_ids": ids})));
                        }
                    }
                    Err(e) => {
                        for run in &part.run_ids {
                            webhook_outcome.insert(*run, ActionOutcome::error(format!("transform plugin: {e}")));
                        }
                    }
                }
            }
        }

        // Evaluator: feedback on each chosen run.
        let mut feedback: Vec<Feedback> = Vec::new();
        let mut eval_outcome: std::collections::HashMap<crate::model::RunId, ActionOutcome> = Default::default();
        if let Some((handle, r)) = &evaluator {
            let results = call_each(plugins, handle, r, rule, &chosen, Capability::Evaluate).await?;
            let now = Timestamp::now();
            for (run, result) in chosen.iter().zip(results) {
                let record = selected.iter().find(|s| s.id == run.id);
                match result {
                    Ok(Value::Array(items)) => {
                        let mut keys = Vec::new();
                        for item in items {
                            let Ok(e) = serde_json::from_value::<crate::plugins::Evaluation>(item) else { continue };
                            keys.push(e.key.clone());
                            feedback.push(Feedback {
                                id: FeedbackId::new_v7(),
                                run_id: Some(run.id),
                                trace_id: record.map(|r| r.trace_id),
                                session_id: Some(spec.session_id),
                                key: e.key,
                                score: e.score,
                                value: e.value,
                                comment: e.comment,
                                correction: None,
                                feedback_source: FeedbackSource::model(&plugin_name(&r.path)),
                                extra: Some(json!({"rule_id": rule.id})),
                                created_at: now,
                                modified_at: now,
                            });
                        }
                        eval_outcome.insert(run.id, ActionOutcome::success(json!({"feedback_keys": keys})));
                    }
                    Ok(_) => {
                        eval_outcome.insert(run.id, ActionOutcome::error("evaluator returned no feedback list"));
                    }
                    Err(e) => {
                        eval_outcome.insert(run.id, ActionOutcome::error(format!("evaluate plugin: {e}")));
                    }
                }
            }
        }

        for run in &chosen {
            if let Some(record) = selected.iter().find(|s| s.id == run.id) {
                logs.push(log(
                    rule,
                    record,
                    window_start,
                    window_end,
                    webhook_outcome.remove(&run.id),
                    eval_outcome.remove(&run.id),
                ));
            }
        }
        report.candidates += n;
        report.actioned += chosen.len();
        report.deliveries += outbox.len();
        store
            .commit_cycle(CycleCommit {
                rule_id: rule.id,
                from_watermark: after,
                to_watermark: to,
                window_start,
                window_end,
                candidates: n,
                logs,
                outbox,
                feedback,
                error: None,
            })
            .await?;
        after = to;
        if last_page {
            break;
        }
    }
    Ok(report)
}

fn log(
    rule: &Rule,
    run: &RunRecord,
    start: Timestamp,
    end: Timestamp,
    webhooks: Option<ActionOutcome>,
    evaluators: Option<ActionOutcome>,
) -> RuleRunLog {
    RuleRunLog {
        rule_id: rule.id,
        run_id: run.id,
        run_name: run.name.clone(),
        run_type: run.run_type.as_str().to_string(),
        session_id: run.session_id,
        thread_id: run.thread_id.clone(),
        window_start: start,
        window_end: end,
        applied_at: Timestamp::now(),
        webhooks,
        evaluators,
    }
}

/// Loads (or finds) the plugin a rule uses for `cap`.
async fn load(
    plugins: &Arc<PluginRegistry>,
    r: &Option<PluginRef>,
    cap: Capability,
) -> Result<Option<(PluginHandle, PluginRef)>, CycleError> {
    let Some(r) = r.clone() else { return Ok(None) };
    let registry = plugins.clone();
    let spec = PluginSpec { name: plugin_name(&r.path), path: r.path.clone().into(), required: Capabilities::of(cap) };
    let handle = tokio::task::spawn_blocking(move || registry.load(&spec)).await??;
    Ok(Some((handle, r)))
}

/// A plugin's name in logs: its file name without the extension.
pub fn plugin_name(path: &str) -> String {
    crate::plugins::name_from_path(path)
}

/// The limits a rule gives a plugin.
pub fn limits(r: &PluginRef) -> PluginLimits {
    let d = PluginLimits::default();
    PluginLimits {
        deadline: r.deadline_ms.map_or(d.deadline, Duration::from_millis),
        memory_bytes: r.memory_mib.map_or(d.memory_bytes, |m| m << 20),
    }
}

/// Calls one capability on each input on a blocking thread, with one
/// instance for the whole batch (a fresh instance per rule cycle).
async fn call_each(
    plugins: &Arc<PluginRegistry>,
    handle: &PluginHandle,
    r: &PluginRef,
    rule: &Rule,
    inputs: &[RenderedRun],
    cap: Capability,
) -> Result<Vec<Result<Value, PluginError>>, CycleError> {
    if inputs.is_empty() {
        return Ok(Vec::new());
    }
    let texts: Vec<String> = inputs.iter().map(|i| Value::Object(i.json.clone()).to_string()).collect();
    let config = r.config.to_string();
    let engine = plugins.engine().clone();
    let handle = handle.clone();
    let limits = limits(r);
    let context = rule.id.to_string();
    Ok(tokio::task::spawn_blocking(move || {
        let mut session = handle.session(&engine, limits, &context);
        let name = handle.name().to_string();
        // Metric handles are looked up once per batch; recording is then an
        // atomic add, far below a plugin call's own cost.
        let duration =
            metrics::histogram!("runhook_plugin_call_duration_seconds", "plugin" => name.clone(), "capability" => cap.to_string());
        let results: Vec<Result<Value, PluginError>> = texts
            .iter()
            .map(|t| {
                let started = std::time::Instant::now();
                let r = call_one(&mut session, cap, t, &config);
                duration.record(started.elapsed().as_secs_f64());
                r
            })
            .collect();
        let mut by_outcome: std::collections::BTreeMap<&'static str, u64> = Default::default();
        for r in &results {
            *by_outcome.entry(r.as_ref().map_or_else(PluginError::kind, |_| "ok")).or_default() += 1;
        }
        for (outcome, n) in by_outcome {
            metrics::counter!("runhook_plugin_calls_total", "plugin" => name.clone(), "capability" => cap.to_string(), "outcome" => outcome)
                .increment(n);
        }
        results
    })
    .await?)
}

fn call_one(
    session: &mut crate::plugins::PluginSession,
    cap: Capability,
    t: &str,
    config: &str,
) -> Result<Value, PluginError> {
    match cap {
        Capability::Match => session.matches(t, config).map(Value::Bool),
        Capability::Transform => session.transform(t, config).map(Value::String),
        Capability::Evaluate => session.evaluate(t, config).map(|evals| {
            Value::Array(
                evals
                    .into_iter()
                    .map(|e| json!({"key": e.key, "score": e.score, "value": e.value, "comment": e.comment}))
                    .collect(),
            )
        }),
    }
}
