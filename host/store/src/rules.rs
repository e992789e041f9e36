//! Rules and their cycles: the rules themselves, where each stands (its
//! watermark in the change sequence), the per-(rule, run) log, and what one
//! cycle commits.
//!
//! [`RuleStore`] is the concern. How a cycle's commit is composed (the
//! watermark moved first and checked, then the log, the outbox rows, the
//! evaluator's feedback and the cycle's summary, all in one transaction)
//! is decided once, in [`commit_cycle`]; a backend implements the
//! statements ([`CycleTx`]).

use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;

use crate::outbox::OutboxRow;
use crate::{ChangeTx, Lease, StoreError};
use runhook_core::model::signals::RuleSignals;
use runhook_core::model::{
    ActionOutcome, ChangeSeq, Example, Feedback, QueueId, Rule, RuleId, RuleSpec, RunId, RunRecord, SessionId,
    Timestamp,
};

/// Rules, their progress and their logs.
#[async_trait]
pub trait RuleStore: Send + Sync + std::fmt::Debug {
    /// Creates a rule. Live processing starts after the current change
    /// sequence; with `backfill_from`, earlier runs started since then are
    /// processed once too.
    async fn create_rule(&self, id: RuleId, spec: &RuleSpec) -> Result<Rule, StoreError>;

    /// Replaces a rule's definition (its progress is kept).
    async fn update_rule(&self, id: RuleId, spec: &RuleSpec) -> Result<Rule, StoreError>;

    /// Deletes a rule, its log and its undelivered webhooks; false if absent.
    async fn delete_rule(&self, id: RuleId) -> Result<bool, StoreError>;

    /// One rule.
    async fn get_rule(&self, id: RuleId) -> Result<Option<Rule>, StoreError>;

    /// Every rule, oldest first.
    async fn list_rules(&self) -> Result<Vec<Rule>, StoreError>;

    /// Where a rule stands.
    async fn rule_state(&self, id: RuleId) -> Result<Option<RuleState>, StoreError>;

    /// How far a cycle may read now: every change up to this position is
    /// committed and visible, and no change committed later will be stamped
    /// at or below it.
    async fn change_seq(&self) -> Result<ChangeSeq, StoreError>;

    /// How long the oldest transaction still writing has been holding
    /// [`RuleStore::change_seq`] back: rules see nothing changed after it
    /// began until it ends. Zero where one writer commits in order.
    async fn horizon_lag(&self) -> Result<std::time::Duration, StoreError>;

    /// A window page shared by the rules of `project`: its finished runs
    /// whose change sequence is in `(after, upto]`, oldest change first, at
    /// most `limit`, lean (inputs, outputs, events and serialized read as
    /// absent; a rule that needs them reads the runs again by id). Which
    /// of them one rule considers is [`Rule::sees`].
    async fn window_runs(
        &self,
        project: SessionId,
        after: ChangeSeq,
        upto: ChangeSeq,
        limit: usize,
    ) -> Result<Vec<RunRecord>, StoreError>;

    /// The threads whose runs thread rule `rule` holds (see
    /// [`CycleCommit::held`]) and that have been idle since `idle_before`
    /// (no held run's activity after it), longest idle first, at most
    /// `limit`; and when the next thread goes idle.
    async fn due_threads(&self, rule: RuleId, idle_before: Timestamp, limit: usize) -> Result<DueThreads, StoreError>;

    /// The rules that have acted on `run`.
    async fn rules_acted_on(&self, run: RunId) -> Result<Vec<RuleId>, StoreError>;

    /// Which of `runs` the rule has already acted on.
    async fn actioned(&self, rule: RuleId, runs: &[RunId]) -> Result<HashSet<RunId>, StoreError>;

    /// Commits one cycle (see [`commit_cycle`]); `Conflict` if the
    /// watermark moved meanwhile, and then nothing of it is kept.
    async fn commit_cycle(&self, commit: CycleCommit) -> Result<(), StoreError>;

    /// A page of a rule's log, newest first.
    async fn rule_logs(&self, rule: RuleId, limit: usize, offset: usize) -> Result<Vec<RuleRunLog>, StoreError>;

    /// A page of a rule's log, newest first, after `after` (the last line
    /// of the page before): a cursor that new lines do not shift.
    async fn rule_log_page(
        &self,
        rule: RuleId,
        after: Option<&RuleLogCursor>,
        limit: usize,
    ) -> Result<Vec<RuleRunLog>, StoreError>;

    /// The rule's last cycles, newest first.
    async fn rule_cycles(&self, rule: RuleId, limit: usize) -> Result<Vec<CycleSummary>, StoreError>;

    /// Records a cycle that failed before it could commit (its error, no
    /// run), so the rule's cycles show it; nothing when the rule is gone.
    async fn record_failed_cycle(&self, rule: RuleId, summary: &CycleSummary) -> Result<(), StoreError>;

    /// Deletes up to `limit` cycle summaries whose window ended before
    /// `before`, keeping each rule's newest (its page shows when it last
    /// ran); returns how many. The rule log is kept: it is what makes a
    /// rule act on a run at most once.
    async fn prune_cycles(&self, before: Timestamp, limit: usize) -> Result<usize, StoreError>;

    /// What every rule (or only `rule`) did since `since`, from its cycles
    /// (ended since) and its deliveries (queued since): a rule with neither
    /// is absent.
    async fn rule_stats(&self, since: Timestamp, rule: Option<RuleId>) -> Result<Vec<RuleStats>, StoreError>;

    /// This process's rule signals: rung for every [`Announcement`] made on
    /// the store, by this process or (on a shared database) any replica.
    fn rule_signals(&self) -> &Arc<RuleSignals>;

    /// Tells every process on the store, this one included, that rules
    /// changed or that one should run a cycle now (whichever replica holds it).
    async fn announce(&self, what: Announcement) -> Result<(), StoreError>;
}

/// A run a thread rule holds until its thread has been idle long enough.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadRun {
    /// The run.
    pub run_id: RunId,
    /// Its thread.
    pub thread_id: String,
    /// When the run last did something, by its own times (its end, or its
    /// start), never later than when it was held.
    pub activity: Timestamp,
}

/// A thread whose runs a thread rule holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingThread {
    /// The thread.
    pub thread_id: String,
    /// Its held runs, earliest activity first.
    pub runs: Vec<ThreadRun>,
}

impl PendingThread {
    /// The earliest and the latest activity of its runs (the thread's
    /// window); `None` for a thread with no run.
    pub fn span(&self) -> Option<(Timestamp, Timestamp)> {
        Some((self.runs.first()?.activity, self.runs.last()?.activity))
    }
}

/// What [`RuleStore::due_threads`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DueThreads {
    /// The threads idle long enough, longest idle first.
    pub threads: Vec<PendingThread>,
    /// Whether more threads are idle than were returned.
    pub more: bool,
    /// The latest activity of the thread that goes idle next: it is due
    /// once that is older than the idle time.
    pub next_last_activity: Option<Timestamp>,
}

impl DueThreads {
    /// Builds the answer from a backend's two reads: `groups`, each held
    /// thread with its latest activity, ascending, at most `limit + 1`
    /// of them; and `runs`, the held runs of the threads due among them.
    pub fn assemble(
        groups: Vec<(String, Timestamp)>,
        mut runs: Vec<ThreadRun>,
        idle_before: Timestamp,
        limit: usize,
    ) -> Self {
        let idle = groups.iter().filter(|(_, last)| *last <= idle_before).count();
        let next_last_activity = groups.iter().find(|(_, last)| *last > idle_before).map(|(_, last)| *last);
        runs.sort_by_key(|r| (r.activity, r.run_id));
        let mut by_thread: std::collections::HashMap<String, Vec<ThreadRun>> = Default::default();
        for r in runs {
            by_thread.entry(r.thread_id.clone()).or_default().push(r);
        }
        let threads = groups
            .into_iter()
            .take(idle.min(limit))
            .map(|(thread_id, _)| PendingThread { runs: by_thread.remove(&thread_id).unwrap_or_default(), thread_id })
            .collect();
        Self { threads, more: idle > limit, next_last_activity }
    }

    /// The thread ids [`DueThreads::assemble`] needs the runs of.
    pub fn due_ids(groups: &[(String, Timestamp)], idle_before: Timestamp, limit: usize) -> Vec<String> {
        groups.iter().filter(|(_, last)| *last <= idle_before).take(limit).map(|(t, _)| t.clone()).collect()
    }
}

/// Where a page of a rule's log ends: its last line's time and run. Logs
/// are ordered by `applied_at` descending, then run id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleLogCursor {
    /// The last line's `applied_at`.
    pub applied_at: Timestamp,
    /// The last line's run.
    pub run_id: RunId,
}

/// A rule's activity over a time span (the dashboard's rules list).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleStats {
    /// The rule.
    pub rule_id: RuleId,
    /// Cycles that ended in the span.
    pub cycles: u64,
    /// Cycles that failed.
    pub failed_cycles: u64,
    /// Runs the cycles considered.
    pub seen: u64,
    /// Runs they acted on.
    pub matched: u64,
    /// Deliveries queued in the span, by where they stand now.
    pub delivered: u64,
    /// ... given up on.
    pub failed: u64,
    /// ... still being tried.
    pub pending: u64,
}

impl RuleStats {
    /// A rule that did nothing.
    pub fn none(rule_id: RuleId) -> Self {
        Self { rule_id, cycles: 0, failed_cycles: 0, seen: 0, matched: 0, delivered: 0, failed: 0, pending: 0 }
    }
}

/// Gathers [`RuleStats`] from a backend's two grouped counts: per rule,
/// its cycles' `[count, failed, seen, matched]`, and its deliveries'
/// count per status.
pub fn stats_from(cycles: Vec<(RuleId, [i64; 4])>, deliveries: Vec<(RuleId, String, i64)>) -> Vec<RuleStats> {
    let mut by_rule: std::collections::BTreeMap<RuleId, RuleStats> = Default::default();
    let count = |n: i64| u64::try_from(n).unwrap_or(0);
    for (id, [n, failed, seen, matched]) in cycles {
        let s = by_rule.entry(id).or_insert_with(|| RuleStats::none(id));
        (s.cycles, s.failed_cycles, s.seen, s.matched) = (count(n), count(failed), count(seen), count(matched));
    }
    for (id, status, n) in deliveries {
        let s = by_rule.entry(id).or_insert_with(|| RuleStats::none(id));
        match status.as_str() {
            "delivered" => s.delivered += count(n),
            "failed" => s.failed += count(n),
            _ => s.pending += count(n),
        }
    }
    by_rule.into_values().collect()
}

/// What the API tells the rule schedulers of every replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Announcement {
    /// Rules were created, edited or deleted.
    RulesChanged,
    /// This rule should run a cycle now.
    Trigger(RuleId),
}

impl Announcement {
    /// Rings it on `signals`.
    pub fn ring(self, signals: &RuleSignals) {
        match self {
            Self::RulesChanged => signals.rules_changed(),
            Self::Trigger(id) => signals.trigger(id),
        }
    }

    /// As text, for a notification payload.
    pub fn to_text(self) -> String {
        match self {
            Self::RulesChanged => "changed".into(),
            Self::Trigger(id) => format!("trigger {id}"),
        }
    }

    /// From [`Announcement::to_text`]'s text.
    pub fn from_text(text: &str) -> Option<Self> {
        match text.split_once(' ') {
            None if text == "changed" => Some(Self::RulesChanged),
            Some(("trigger", id)) => id.parse().ok().map(Self::Trigger),
            _ => None,
        }
    }
}

/// The statements a cycle's commit needs, inside one open transaction.
#[allow(async_fn_in_trait)] // used generically inside one crate's backend, never as `dyn`
pub trait CycleTx: ChangeTx {
    /// Moves `rule`'s watermark from `from` to `to` and its window end to
    /// `window_end`; false (and nothing changed) when the watermark is not
    /// at `from`, the rule is gone, or (given a lease) the rule is no
    /// longer held under it.
    async fn move_watermark(
        &mut self,
        rule: RuleId,
        from: ChangeSeq,
        to: ChangeSeq,
        window_end: Timestamp,
        lease: Option<&Lease>,
    ) -> Result<bool, StoreError>;
    /// Adds lines to rules' logs, each unless its (rule, run) line exists
    /// (a page's lines in a few statements: one each cost more than the
    /// rest of the commit).
    async fn insert_logs(&mut self, logs: &[RuleRunLog]) -> Result<(), StoreError>;
    /// Queues a delivery: pending, due now.
    async fn queue_delivery(&mut self, row: &OutboxRow) -> Result<(), StoreError>;
    /// Adds the cycle's summary to the rule's history.
    async fn insert_cycle(&mut self, rule: RuleId, summary: &CycleSummary) -> Result<(), StoreError>;
    /// Adds runs to an annotation queue that exists (one deleted since the
    /// rule was saved takes none); a run already in it stays as it is.
    async fn queue_runs_once(&mut self, queue: QueueId, runs: &[RunId], at: Timestamp) -> Result<(), StoreError>;
    /// Adds examples whose id is not stored yet, to datasets that exist
    /// (one deleted since the rule was saved takes none).
    async fn insert_examples_once(&mut self, examples: &[Example]) -> Result<(), StoreError>;
    /// Holds runs of thread rule `rule` until their threads are idle; a run
    /// held already keeps the later of its two activities.
    async fn hold_thread_runs(&mut self, rule: RuleId, runs: &[ThreadRun]) -> Result<(), StoreError>;
    /// Lets held runs of `rule` go (their threads were acted on).
    async fn release_thread_runs(&mut self, rule: RuleId, runs: &[RunId]) -> Result<(), StoreError>;
}

/// Composes a cycle's commit through `tx`; the caller commits the
/// transaction, and rings the outbox bell when [`CycleCommit::queues_deliveries`].
/// The watermark moves first, so a cycle that lost a race writes nothing.
pub async fn commit_cycle(tx: &mut impl CycleTx, c: &CycleCommit) -> Result<(), StoreError> {
    if !tx.move_watermark(c.rule_id, c.from_watermark, c.to_watermark, c.window_end, c.lease.as_ref()).await? {
        return Err(StoreError::Conflict(format!(
            "rule {} moved on, was deleted or changed hands during its cycle",
            c.rule_id
        )));
    }
    tx.insert_logs(&c.logs).await?;
    tx.hold_thread_runs(c.rule_id, &c.held).await?;
    tx.release_thread_runs(c.rule_id, &c.released).await?;
    // LangSmith's order: annotation queue, dataset, webhook, evaluator.
    if let Some((queue, runs)) = &c.queued {
        tx.queue_runs_once(*queue, runs, c.window_end).await?;
    }
    tx.insert_examples_once(&c.examples).await?;
    for o in &c.outbox {
        tx.queue_delivery(o).await?;
    }
    let now = Timestamp::now();
    for f in &c.feedback {
        crate::add_feedback(tx, f, now).await?;
    }
    let summary = CycleSummary {
        window_start: c.window_start,
        window_end: c.window_end,
        candidates: i64::try_from(c.candidates).unwrap_or(i64::MAX),
        actioned: i64::try_from(c.logs.len()).unwrap_or(i64::MAX),
        error: c.error.clone(),
    };
    tx.insert_cycle(c.rule_id, &summary).await
}

/// Where a rule stands: the change sequence processed and the window end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuleState {
    /// Runs with `seq` up to this have been considered.
    pub watermark: ChangeSeq,
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
    /// The annotation-queue action's outcome.
    pub add_to_annotation_queue: Option<ActionOutcome>,
    /// The dataset action's outcome.
    pub add_to_dataset: Option<ActionOutcome>,
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
    pub from_watermark: ChangeSeq,
    /// The new watermark.
    pub to_watermark: ChangeSeq,
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
    /// Runs for an annotation queue (each added once: a run already in
    /// the queue stays as it is).
    pub queued: Option<(QueueId, Vec<RunId>)>,
    /// Examples for the rule's dataset (ids derived from rule and run, so a
    /// cycle repeated after a crash adds none twice).
    pub examples: Vec<Example>,
    /// Feedback written by the evaluator.
    pub feedback: Vec<Feedback>,
    /// A thread rule's runs, held until their threads are idle.
    pub held: Vec<ThreadRun>,
    /// Held runs let go: their threads are acted on in this commit.
    pub released: Vec<RunId>,
    /// A cycle-level error, for the cycle history.
    pub error: Option<String>,
    /// The lease the cycle ran under: the commit is refused unless the rule
    /// is still held under it. `None` only where one process owns the
    /// store (tools, tests).
    pub lease: Option<Lease>,
}

impl CycleCommit {
    /// A commit of `rule`'s cycle over the window `start..end`, moving its
    /// watermark from `from` to `to`, with nothing else in it yet.
    pub fn new(rule: RuleId, from: ChangeSeq, to: ChangeSeq, start: Timestamp, end: Timestamp) -> Self {
        Self {
            rule_id: rule,
            from_watermark: from,
            to_watermark: to,
            window_start: start,
            window_end: end,
            candidates: 0,
            logs: Vec::new(),
            outbox: Vec::new(),
            queued: None,
            examples: Vec::new(),
            feedback: Vec::new(),
            held: Vec::new(),
            released: Vec::new(),
            error: None,
            lease: None,
        }
    }

    /// Whether committing it makes deliveries due now.
    pub fn queues_deliveries(&self) -> bool {
        !self.outbox.is_empty()
    }
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
        "add_to_annotation_queue": l.add_to_annotation_queue,
        "add_to_dataset": l.add_to_dataset,
        "evaluators": l.evaluators,
    })
}
