//! Which rules this replica runs, and one task per rule it runs.
//!
//! Every replica on one database runs this scheduler. Each tick (a quarter
//! of the lease, or when the API signals a change) it heartbeats, reads the
//! rules, and balances its leases: it renews those it holds, gives up any
//! beyond its fair share of the rules over the replicas alive, and takes
//! free or expired ones up to it (see `runhook_store::leases`). It keeps a
//! task for each enabled rule it holds: the task runs a cycle, then waits
//! until its project's runs change (the store rings on every commit that
//! changes them, on this replica and, through the database, the others),
//! the rule is triggered, or its interval passes. Woken by runs, it
//! collects for `batch_ms` so that runs ingested together share a window;
//! the interval is the longest a run waits when a wake-up is lost (a
//! replica died between its commit and its notification), and an interval
//! with no run of the project changed since the last cycle runs none. A rule with
//! `wake_on_ingest` off polls every interval, as LangSmith's rules do. A
//! thread rule also runs a cycle when its next held thread goes idle, and
//! at every interval.
//! Each page commits under the rule's lease, so a replica that lost the
//! rule meanwhile (paused, cut off) commits nothing. A slow or failing rule
//! delays only itself.
//!
//! A task is restarted when its rule is edited or its lease retaken (a new
//! epoch), and stopped when the rule is deleted, disabled or leased
//! elsewhere. Shutdown stops the tasks between cycles, waits for a cycle
//! in progress to commit, and gives the leases up so other replicas take
//! them over at once. A replica that dies keeps its leases until they
//! expire: its rules resume elsewhere within a lease plus a tick.
//!
//! On the embedded store there is one replica, which holds every rule.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::pipeline::{CycleError, CycleReport, Engine, Prepared, run_cycle};
use runhook_core::model::signals::RuleSignals;
use runhook_core::model::{ChangeSeq, Rule, RuleId, Timestamp};
use runhook_store::leases::fair_share;
use runhook_store::{CycleSummary, Lease, Store, StoreError};

/// This replica in the cluster: its name and how long its leases last.
#[derive(Debug, Clone)]
pub struct Replica {
    /// Unique among the replicas ever started on the database.
    pub name: String,
    /// How long a lease lasts without renewal (a dead replica's rules are
    /// taken over about this long after it died).
    pub lease: Duration,
}

impl Replica {
    /// This process, named after the host, the process id and a random tag.
    pub fn this_process(lease: Duration) -> Self {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "runhook".into());
        let tag = uuid::Uuid::new_v4().simple().to_string();
        Self { name: format!("{host}/{}/{}", std::process::id(), &tag[..8]), lease }
    }

    /// How often leases are renewed and rebalanced.
    fn tick(&self) -> Duration {
        (self.lease / 4).max(Duration::from_millis(250))
    }
}

struct Running {
    updated_at: Timestamp,
    epoch: i64,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

/// Runs the scheduler until `shutdown`.
pub async fn run(engine: Engine, signals: Arc<RuleSignals>, replica: Replica, shutdown: CancellationToken) {
    let mut running: HashMap<RuleId, Running> = HashMap::new();
    let store = engine.store.clone();
    loop {
        match balance(store.as_ref(), &replica).await {
            Ok((rules, leases)) => {
                let takeovers = leases.iter().filter(|l| running.get(&l.rule).is_none_or(|r| r.epoch != l.epoch));
                let newly = takeovers.count();
                metrics::counter!("runhook_rule_leases_taken_total").increment(newly as u64);
                metrics::gauge!("runhook_rules_owned").set(leases.len() as f64);
                reconcile(&mut running, rules, leases, &engine, &signals, &shutdown);
            }
            Err(e) => tracing::error!(error = %e, "cannot read or lease rules"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = signals.changed() => {}
            _ = tokio::time::sleep(replica.tick()) => {}
        }
    }
    for (_, r) in running.drain() {
        r.stop.cancel();
        let _ = r.task.await;
    }
    if let Err(e) = store.leave(&replica.name).await {
        tracing::warn!(error = %e, "cannot give up leases; other replicas take them over when they expire");
    }
}

/// Heartbeats, reads the rules and balances this replica's leases.
async fn balance(store: &dyn Store, replica: &Replica) -> Result<(Vec<Rule>, Vec<Lease>), StoreError> {
    let alive = store.heartbeat(&replica.name, replica.lease).await?;
    metrics::gauge!("runhook_replicas_alive").set(alive as f64);
    let rules = store.list_rules().await?;
    let leases = store.balance_leases(&replica.name, fair_share(rules.len(), alive), replica.lease).await?;
    Ok((rules, leases))
}

fn reconcile(
    running: &mut HashMap<RuleId, Running>,
    rules: Vec<Rule>,
    leases: Vec<Lease>,
    engine: &Engine,
    signals: &Arc<RuleSignals>,
    shutdown: &CancellationToken,
) {
    let held: HashMap<RuleId, Lease> = leases.into_iter().map(|l| (l.rule, l)).collect();
    let wanted: HashMap<RuleId, Rule> =
        rules.into_iter().filter(|r| r.spec.is_enabled && held.contains_key(&r.id)).map(|r| (r.id, r)).collect();
    running.retain(|id, r| {
        let same = wanted.get(id).is_some_and(|w| w.updated_at == r.updated_at)
            && held.get(id).is_some_and(|l| l.epoch == r.epoch);
        let keep = same && !r.task.is_finished();
        if !keep {
            r.stop.cancel();
        }
        keep
    });
    let running_ids: HashSet<RuleId> = running.keys().copied().collect();
    for (id, rule) in wanted {
        if running_ids.contains(&id) {
            continue;
        }
        let Some(lease) = held.get(&id).cloned() else { continue };
        let stop = shutdown.child_token();
        let (updated_at, epoch) = (rule.updated_at, lease.epoch);
        let task = tokio::spawn(rule_loop(rule, lease, engine.clone(), signals.clone(), stop.clone()));
        running.insert(id, Running { updated_at, epoch, stop, task });
    }
}

/// Why a rule task runs its next cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wake {
    /// Runs of its project changed (and the batch has been collected).
    Runs,
    /// Triggered through the API.
    Trigger,
    /// Its interval passed without a wake-up.
    Interval,
    /// A thread rule's thread went idle.
    Thread,
}

async fn rule_loop(rule: Rule, lease: Lease, engine: Engine, signals: Arc<RuleSignals>, stop: CancellationToken) {
    let trigger = signals.trigger_handle(rule.id);
    let mut project = signals.project(rule.spec.session_id);
    let spec = &rule.spec;
    let interval = Duration::from_secs(spec.interval_seconds.max(1));
    let batch = Duration::from_millis(spec.batch_ms);
    tracing::info!(rule = %rule.id, name = %spec.display_name, interval_s = interval.as_secs(),
        wake_on_ingest = spec.wake_on_ingest, batch_ms = spec.batch_ms, epoch = lease.epoch, "rule scheduled");
    // How far the last cycle read; an interval that passes with no run of
    // the project changed beyond it runs no cycle (idle rules cost one
    // indexed read per interval, and no writes).
    let mut read_upto: Option<ChangeSeq> = None;
    // A thread rule's next thread to go idle: a cycle runs then, whether
    // or not runs arrived.
    let mut thread_due: Option<Timestamp> = None;
    let mut due = true;
    // Compiled once; an edit restarts the task.
    let prepared = Prepared::new(rule.clone());
    loop {
        // Every change rung before the cycle starts is in its window.
        let generation = *project.borrow_and_update();
        let started = Instant::now();
        match &prepared {
            Ok(prepared) if due => {
                // A failed cycle is retried at the next wake-up or interval,
                // not at a thread's due time over and over.
                thread_due = None;
                if let Some(report) = cycle(&engine, prepared, &lease, generation).await {
                    read_upto = Some(report.upto);
                    thread_due = report.next_thread_due;
                }
            }
            Ok(_) => {}
            Err(e) => {
                tracing::error!(rule = %rule.id, error = %e, "rule filter does not compile; the rule waits for an edit")
            }
        }
        // Runs that arrived during the cycle have waited since it began.
        let pending = project.has_changed().unwrap_or(false);
        let wake = tokio::select! {
            _ = stop.cancelled() => break,
            _ = trigger.notified() => Wake::Trigger,
            _ = project.changed(), if spec.wake_on_ingest => Wake::Runs,
            _ = tokio::time::sleep(interval) => Wake::Interval,
            _ = tokio::time::sleep(until(thread_due)), if thread_due.is_some() => Wake::Thread,
        };
        due = match wake {
            Wake::Trigger | Wake::Thread => true,
            Wake::Runs => {
                let woken = if pending { started } else { Instant::now() };
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep_until((woken + batch).into()) => true,
                }
            }
            // Runs of the project changed past what the last cycle read
            // (the check is one indexed row on both stores).
            // A thread rule's held threads go idle with no run changing,
            // so each interval looks at them.
            Wake::Interval if spec.group_by.is_some() => true,
            Wake::Interval => match read_upto {
                Some(read) => {
                    let changed = engine.store.window_runs(spec.session_id, read, ChangeSeq::END, 1).await;
                    !matches!(changed, Ok(runs) if runs.is_empty())
                }
                None => true,
            },
        };
    }
}

/// How long until `at` (zero when past; a little after, so the thread
/// is idle by then on the store's clock too).
fn until(at: Option<Timestamp>) -> Duration {
    let Some(at) = at else { return Duration::ZERO };
    let left = at.as_datetime() - Timestamp::now().as_datetime();
    left.to_std().unwrap_or(Duration::ZERO) + Duration::from_millis(20)
}

/// Runs one cycle of `rule` and records it; its report, unless it failed.
async fn cycle(engine: &Engine, prepared: &Prepared, lease: &Lease, generation: u64) -> Option<CycleReport> {
    let rule = &prepared.rule;
    let started = Instant::now();
    let result = run_cycle(engine, prepared, Some(lease), generation).await;
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
            if report.candidates > 0 || report.actioned > 0 {
                tracing::info!(
                    rule = %rule.id,
                    candidates = report.candidates,
                    actioned = report.actioned,
                    deliveries = report.deliveries,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "rule cycle"
                );
            }
            Some(report)
        }
        // The rule changed, was deleted or moved to another replica while
        // the cycle ran: nothing was committed, and that is no failure.
        Err(CycleError::Store(StoreError::Conflict(why))) => {
            metrics::counter!("runhook_rule_cycles_total", "rule" => rule_label, "outcome" => "superseded")
                .increment(1);
            tracing::info!(rule = %rule.id, %why, "rule cycle superseded; nothing committed");
            None
        }
        Err(e) => {
            metrics::counter!("runhook_rule_cycles_total", "rule" => rule_label, "outcome" => "error").increment(1);
            tracing::error!(rule = %rule.id, error = %e, "rule cycle failed; retrying at its next wake-up or interval");
            // Listed among the rule's cycles, so its page shows why.
            let now = Timestamp::now();
            let summary = CycleSummary {
                window_start: now,
                window_end: now,
                candidates: 0,
                actioned: 0,
                error: Some(e.to_string()),
            };
            if let Err(e) = engine.store.record_failed_cycle(rule.id, &summary).await {
                tracing::warn!(rule = %rule.id, error = %e, "cannot record the failed cycle");
            }
            None
        }
    }
}
