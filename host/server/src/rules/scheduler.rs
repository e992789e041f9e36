//! One task per enabled rule, each on its own interval.
//!
//! The scheduler keeps a task per enabled rule. A rule's task runs a cycle,
//! then sleeps for the rule's interval or until the rule is triggered; a
//! slow or failing rule delays only itself. When rules change (the API
//! signals it; the store is re-read every few seconds anyway), tasks of
//! changed rules are restarted, of deleted or disabled ones stopped, of new
//! ones started. Shutdown cancels the tasks between cycles, and waits for a
//! cycle in progress to commit.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::pipeline::run_cycle;
use runhook_core::model::signals::RuleSignals;
use runhook_core::model::{Rule, RuleId, Timestamp};
use runhook_plugins::PluginRegistry;
use runhook_store::Store;

/// How often the rule list is re-read even without a signal.
const RESCAN: Duration = Duration::from_secs(5);

struct Running {
    updated_at: Timestamp,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

/// Runs the scheduler until `shutdown`.
pub async fn run(
    store: Arc<dyn Store>,
    plugins: Arc<PluginRegistry>,
    signals: Arc<RuleSignals>,
    shutdown: CancellationToken,
) {
    let mut running: HashMap<RuleId, Running> = HashMap::new();
    loop {
        match store.list_rules().await {
            Ok(rules) => reconcile(&mut running, rules, &store, &plugins, &signals, &shutdown),
            Err(e) => tracing::error!(error = %e, "cannot read rules"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = signals.changed() => {}
            _ = tokio::time::sleep(RESCAN) => {}
        }
    }
    for (_, r) in running.drain() {
        r.stop.cancel();
        let _ = r.task.await;
    }
}

fn reconcile(
    running: &mut HashMap<RuleId, Running>,
    rules: Vec<Rule>,
    store: &Arc<dyn Store>,
    plugins: &Arc<PluginRegistry>,
    signals: &Arc<RuleSignals>,
    shutdown: &CancellationToken,
) {
    let wanted: HashMap<RuleId, Rule> = rules.into_iter().filter(|r| r.spec.is_enabled).map(|r| (r.id, r)).collect();
    running.retain(|id, r| {
        let keep = wanted.get(id).is_some_and(|w| w.updated_at == r.updated_at) && !r.task.is_finished();
        if !keep {
            r.stop.cancel();
        }
        keep
    });
    for (id, rule) in wanted {
        if running.contains_key(&id) {
            continue;
        }
        let stop = shutdown.child_token();
        let task = tokio::spawn(rule_loop(rule.clone(), store.clone(), plugins.clone(), signals.clone(), stop.clone()));
        running.insert(id, Running { updated_at: rule.updated_at, stop, task });
    }
}

async fn rule_loop(
    rule: Rule,
    store: Arc<dyn Store>,
    plugins: Arc<PluginRegistry>,
    signals: Arc<RuleSignals>,
    stop: CancellationToken,
) {
    let trigger = signals.trigger_handle(rule.id);
    let interval = Duration::from_secs(rule.spec.interval_seconds.max(1));
    tracing::info!(rule = %rule.id, name = %rule.spec.display_name, interval_s = interval.as_secs(), "rule scheduled");
    loop {
        let started = std::time::Instant::now();
        let result = run_cycle(&store, &plugins, &rule).await;
        let rule_label = rule.id.to_string();
        metrics::histogram!("runhook_rule_cycle_duration_seconds", "rule" => rule_label.clone())
            .record(started.elapsed().as_secs_f64());
        match result {
            Ok(report) => {
                metrics::counter!("runhook_rule_cycles_total", "rule" => rule_label.clone(), "outcome" => "ok")
                    .increment(1);
                metrics::counter!("runhook_rule_runs_seen_total", "rule" => rule_label.clone())
                    .increment(report.candidates as u64);
                metrics::counter!("runhook_rule_runs_matched_total", "rule" => rule_label)
                    .increment(report.actioned as u64);
                if report.candidates > 0 {
                    tracing::info!(
                        rule = %rule.id,
                        candidates = report.candidates,
                        actioned = report.actioned,
                        deliveries = report.deliveries,
                        elapsed_ms = started.elapsed().as_millis() as u64,
                        "rule cycle"
                    );
                }
            }
            Err(e) => {
                metrics::counter!("runhook_rule_cycles_total", "rule" => rule_label, "outcome" => "error").increment(1);
                tracing::error!(rule = %rule.id, error = %e, "rule cycle failed; retrying next interval");
            }
        }
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = trigger.notified() => {}
            _ = tokio::time::sleep(interval) => {}
        }
    }
}
