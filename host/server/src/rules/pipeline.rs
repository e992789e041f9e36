//! One rule cycle: window -> candidates -> filters -> match plugin ->
//! sampling -> actions (webhook, then evaluator) -> one commit.
//!
//! The window is the change sequence from the rule's watermark to the
//! store's horizon. It is read in pages (oldest change first) that the
//! rules of a project share (see `window`): lean runs, the filters
//! evaluated on them, and only the runs the filters select read whole and
//! rendered. What the rule chose is committed with the watermark moved to
//! the last run read, the rule log, the outbox rows and the evaluator's
//! feedback, all in one transaction, once a page's worth of runs is
//! chosen and at the window's end: a sparse rule's payloads carry runs of
//! many pages. A crash therefore repeats at most the pages since the last
//! commit, which committed nothing, and never loses one.
//!
//! A run is acted on at most once per rule (the rule log is keyed by rule
//! and run): a run that gains feedback re-enters the window and may newly
//! match, but one already sent is not sent again. A plugin that fails on a
//! run fails that run's action, recorded in the log; the cycle goes on.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::json;

use super::dataset::example_of;
use super::sample::sampled;
use super::threads;
use super::window::{PAGE, Page, Windows};
use crate::payload::{self, RenderedRun};
use crate::plugins::{PluginCallError, call_each, format_each, load, load_formats};
use crate::select::{Budget, SelectError, Selection, SelectionError};
use runhook_core::model::{
    ActionOutcome, DatasetId, Feedback, FeedbackId, FeedbackSource, PluginRef, QueueId, Rule, RunId, RunRecord,
    Timestamp, WebhookTarget,
};
use runhook_plugins::{Capability, PluginError, PluginHandle, PluginRegistry, PluginSession};
use runhook_store::{ChangeSeq, CycleCommit, Lease, OutboxRow, RuleRunLog, Store, StoreError};

/// What every rule's cycles share: the store, the plugins, the window pages.
#[derive(Debug, Clone)]
pub struct Engine {
    /// The store.
    pub store: Arc<dyn Store>,
    /// Compiled plugins (a component used by many rules is compiled once).
    pub plugins: Arc<PluginRegistry>,
    /// Window pages shared by the rules of a project.
    pub windows: Arc<Windows>,
    /// Large inputs and outputs by link in payloads (`None`: always inline).
    pub large: Option<Arc<payload::LargeFields>>,
    /// Where rules' PagerDuty `alerts` are sent.
    pub pagerduty_url: String,
}

impl Engine {
    /// An engine over `store` and `plugins`, with no pages read yet.
    pub fn new(store: Arc<dyn Store>, plugins: Arc<PluginRegistry>) -> Self {
        let pagerduty_url = runhook_core::model::rule::PAGERDUTY_EVENTS_URL.to_string();
        Self { store, plugins, windows: Arc::default(), large: None, pagerduty_url }
    }
}

/// A rule with its filters compiled, as its task keeps it between cycles.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The rule.
    pub rule: Rule,
    selection: Selection,
}

impl Prepared {
    /// Compiles `rule`'s filters.
    pub fn new(rule: Rule) -> Result<Self, SelectionError> {
        let spec = &rule.spec;
        let selection =
            Selection::parse(spec.filter.as_deref(), spec.trace_filter.as_deref(), spec.tree_filter.as_deref())?;
        Ok(Self { rule, selection })
    }
}

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
    /// The filters could not be evaluated.
    #[error(transparent)]
    Select(SelectError),
}

impl From<PluginCallError> for CycleError {
    fn from(e: PluginCallError) -> Self {
        match e {
            PluginCallError::Plugin(e) => CycleError::Plugin(e),
            PluginCallError::Join(e) => CycleError::Join(e),
        }
    }
}

impl From<SelectError> for CycleError {
    fn from(e: SelectError) -> Self {
        match e {
            SelectError::Store(e) => CycleError::Store(e),
            other => CycleError::Select(other),
        }
    }
}

/// What a cycle did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CycleReport {
    /// How far the cycle read: the store's change sequence when it began.
    pub upto: ChangeSeq,
    /// Runs considered (changed in the window, finished).
    pub candidates: usize,
    /// Runs that passed filters, match plugin and sampling.
    pub actioned: usize,
    /// Webhook deliveries queued.
    pub deliveries: usize,
    /// A thread rule's next thread due: when it goes idle (now, when more
    /// threads were idle than a cycle acts on).
    pub next_thread_due: Option<Timestamp>,
}

/// What a cycle holds for all its pages: the rule, its window, its filters
/// compiled and its plugins loaded.
pub(super) struct Cycle<'r> {
    pub(super) rule: &'r Rule,
    pub(super) large: Option<&'r payload::LargeFields>,
    pub(super) window_start: Timestamp,
    pub(super) window_end: Timestamp,
    selection: &'r Selection,
    matcher: Option<(PluginHandle, PluginRef)>,
    /// The annotation queue and the dataset the rule adds runs to, and
    /// whether each still exists.
    queue: Option<(QueueId, bool)>,
    dataset: Option<(DatasetId, bool)>,
    transformer: Option<(PluginHandle, PluginRef)>,
    /// Where payloads go: the webhooks, then the PagerDuty alerts.
    pub(super) targets: Vec<WebhookTarget>,
    /// Each target's message format, by the target's position.
    formats: Vec<Option<(PluginHandle, PluginRef)>>,
    evaluator: Option<(PluginHandle, PluginRef)>,
}

impl Cycle<'_> {
    /// A commit of this cycle moving the watermark from `after` to `to`,
    /// with nothing else in it yet.
    pub(super) fn commit(&self, after: ChangeSeq, to: ChangeSeq) -> CycleCommit {
        CycleCommit::new(self.rule.id, after, to, self.window_start, self.window_end)
    }
}

/// One page's candidates after the filters.
struct Selected {
    /// Candidates read (changed in the window, finished).
    candidates: usize,
    /// Where the watermark moves when the page commits.
    to: ChangeSeq,
    /// Whether this is the window's last page.
    last: bool,
    /// The runs that passed the three filters, rendered, beside their records.
    runs: Vec<(Arc<RenderedRun>, Arc<RunRecord>)>,
}

/// The runs the rule acts on (past the match plugin and sampling), and the
/// log lines of those a plugin failed on.
pub(super) struct Matched {
    pub(super) chosen: Vec<(Arc<RenderedRun>, Arc<RunRecord>)>,
    pub(super) logs: Vec<RuleRunLog>,
}

/// Runs one cycle of `rule`: the window from its watermark to the store's
/// horizon, page by page, each page through the stages `select`,
/// `matching` and `act`, and committed on its own, under `lease` when the
/// rule is leased (a page of a lease lost meanwhile commits nothing).
/// `generation` is the rule's project's change counter seen before the
/// cycle began: the pages it reads hold every change rung before it.
pub async fn run_cycle(
    engine: &Engine,
    prepared: &Prepared,
    lease: Option<&Lease>,
    generation: u64,
) -> Result<CycleReport, CycleError> {
    let (store, plugins, rule) = (&engine.store, &engine.plugins, &prepared.rule);
    let Some(state) = store.rule_state(rule.id).await? else {
        return Ok(CycleReport::default()); // deleted meanwhile
    };
    let spec = &rule.spec;
    let targets = spec.targets(rule.id, &engine.pagerduty_url);
    let cycle = Cycle {
        rule,
        large: engine.large.as_deref(),
        window_start: state.window_end,
        window_end: Timestamp::now(),
        selection: &prepared.selection,
        matcher: load(plugins, &spec.plugins.matcher, Capability::Match).await?,
        queue: match spec.add_to_annotation_queue_id {
            Some(id) => Some((id, store.get_queue(id).await?.is_some())),
            None => None,
        },
        dataset: match spec.add_to_dataset_id {
            Some(id) => Some((id, store.get_dataset(id).await?.is_some())),
            None => None,
        },
        transformer: load(plugins, &spec.plugins.transform, Capability::Transform).await?,
        formats: load_formats(plugins, &targets).await?,
        targets,
        evaluator: load(plugins, &spec.plugins.evaluate, Capability::Evaluate).await?,
    };
    let thread_rule = spec.group_by.is_some();
    let mut report = CycleReport::default();
    // Where the stored watermark is, and what the pages read since hold:
    // their candidates and the runs chosen and logged on them. Pages
    // commit together until a page's worth is chosen or the window ends
    // (a crash repeats them all, having sent nothing), so a rule that
    // chooses a run here and there sends full payloads, not one per page.
    let (mut committed, mut uncommitted) = (state.watermark, 0);
    let mut held = Matched { chosen: Vec::new(), logs: Vec::new() };
    let mut after = state.watermark;
    let mut next: Option<tokio::task::JoinHandle<Result<Arc<Page>, StoreError>>> = None;
    loop {
        let page = match next.take() {
            Some(prefetched) => prefetched.await??,
            None => engine.windows.page(store, spec.session_id, after, generation).await?,
        };
        // The next page is read while this one is worked on.
        if !page.is_last() {
            let (windows, store, to) = (engine.windows.clone(), store.clone(), page.moves_to(after));
            let project = spec.session_id;
            next = Some(tokio::spawn(async move { windows.page(&store, project, to, generation).await }));
        }
        if report.upto == ChangeSeq::default() {
            report.upto = page.horizon();
        }
        let selected = select(store, &cycle, &page, after).await?;
        let (candidates, to, last) = (selected.candidates, selected.to, selected.last);
        let matched = matching(plugins, &cycle, selected.runs).await?;
        if !thread_rule {
            report.actioned += matched.chosen.len();
        }
        report.candidates += candidates;
        uncommitted += candidates;
        held.chosen.extend(matched.chosen);
        held.logs.extend(matched.logs);
        after = to;
        if !last && held.chosen.len() + held.logs.len() < PAGE {
            continue;
        }
        let matched = std::mem::replace(&mut held, Matched { chosen: Vec::new(), logs: Vec::new() });
        let commit = match thread_rule {
            true => threads::hold(&cycle, matched, committed, to, uncommitted),
            false => act(plugins, &cycle, matched, committed, to, uncommitted).await?,
        };
        report.deliveries += commit.outbox.len();
        store.commit_cycle(CycleCommit { lease: lease.cloned(), ..commit }).await?;
        (committed, uncommitted) = (to, 0);
        if last {
            break;
        }
    }
    if thread_rule {
        let acted = threads::act_on_idle(engine, &cycle, committed, lease).await?;
        report.actioned += acted.runs;
        report.deliveries += acted.deliveries;
        report.next_thread_due = acted.next_due;
    }
    Ok(report)
}

/// Stage 1: the runs of `page` after `after` that the rule considers,
/// through the three filters, less those the rule already acted on,
/// rendered.
async fn select(
    store: &Arc<dyn Store>,
    cycle: &Cycle<'_>,
    page: &Page,
    after: ChangeSeq,
) -> Result<Selected, CycleError> {
    let rule = cycle.rule;
    let candidates: Vec<Arc<RunRecord>> = page.runs_after(after).iter().filter(|r| rule.sees(r)).cloned().collect();
    let n = candidates.len();
    let candidates = if cycle.selection.needs_io() { page.with_io(store, &candidates).await? } else { candidates };
    let mut selected = cycle.selection.retain(store.as_ref(), candidates, &Budget::unlimited()).await?;
    if !selected.is_empty() {
        let ids: Vec<RunId> = selected.iter().map(|r| r.id).collect();
        let done = store.actioned(rule.id, &ids).await?;
        selected.retain(|r| !done.contains(&r.id));
    }
    let runs = page.render(store, selected).await?;
    Ok(Selected { candidates: n, to: page.moves_to(after), last: page.is_last(), runs })
}

/// Stage 2: the match plugin, then sampling. A run the plugin failed on is
/// logged with the error and not acted on.
async fn matching(
    plugins: &Arc<PluginRegistry>,
    cycle: &Cycle<'_>,
    runs: Vec<(Arc<RenderedRun>, Arc<RunRecord>)>,
) -> Result<Matched, CycleError> {
    let rule = cycle.rule;
    let verdicts = match &cycle.matcher {
        Some(matcher) => {
            let texts = runs.iter().map(|(run, _)| payload::json_text(&run.json)).collect();
            Some(
                call_each(plugins, matcher, &rule.id.to_string(), texts, Capability::Match, PluginSession::matches)
                    .await?,
            )
        }
        None => None,
    };
    let mut matched = Matched { chosen: Vec::new(), logs: Vec::new() };
    for (i, (run, record)) in runs.into_iter().enumerate() {
        match verdicts.as_ref().map(|v| &v[i]) {
            Some(Err(e)) => {
                let outcome = ActionOutcome::error(format!("match plugin: {e}"));
                let outcomes = Outcomes { webhooks: Some(outcome), ..Outcomes::default() };
                matched.logs.push(log(rule, &record, cycle.window_start, cycle.window_end, outcomes));
                continue;
            }
            Some(Ok(false)) => continue,
            _ => {}
        }
        // A thread rule samples whole threads when it acts on them.
        if rule.spec.group_by.is_some() || sampled(rule.id, run.id, rule.spec.sampling_rate) {
            matched.chosen.push((run, record));
        }
    }
    Ok(matched)
}

/// Stage 3: the actions in LangSmith's order (webhook: payloads, the
/// transform plugin, outbox rows; then the evaluator's feedback), and the
/// page's commit: watermark from `after` to `to`, log lines, outbox rows,
/// feedback.
async fn act(
    plugins: &Arc<PluginRegistry>,
    cycle: &Cycle<'_>,
    matched: Matched,
    after: ChangeSeq,
    to: ChangeSeq,
    candidates: usize,
) -> Result<CycleCommit, CycleError> {
    let (rule, spec) = (cycle.rule, &cycle.rule.spec);
    let Matched { chosen, mut logs } = matched;
    let (chosen, records): (Vec<Arc<RenderedRun>>, Vec<Arc<RunRecord>>) = chosen.into_iter().unzip();

    // Annotation queue, then dataset: before the webhook (LangSmith's order).
    let ids: Vec<RunId> = chosen.iter().map(|r| r.id).collect();
    let (queued, mut queue_outcome) = queue_action(cycle, &ids);
    let mut examples = Vec::new();
    let mut dataset_outcome: HashMap<RunId, ActionOutcome> = HashMap::new();
    if let Some((dataset, exists)) = cycle.dataset {
        let now = Timestamp::now();
        for run in &chosen {
            let outcome = if exists {
                let e = example_of(rule.id, dataset, run, spec.add_to_dataset_prefer_correction, now);
                let outcome = ActionOutcome::success(json!({"dataset_id": dataset, "example_id": e.id}));
                examples.push(e);
                outcome
            } else {
                ActionOutcome::error(format!("dataset {dataset} no longer exists"))
            };
            dataset_outcome.insert(run.id, outcome);
        }
    }

    // Webhook: payloads, transform plugin, outbox rows.
    let parts = match cycle.targets.is_empty() || chosen.is_empty() {
        true => Vec::new(),
        false => payload::payloads(
            rule.id,
            cycle.window_start,
            cycle.window_end,
            &chosen,
            spec.max_runs_per_payload,
            cycle.large,
        ),
    };
    let (outbox, mut webhook_outcome) = webhook_action(plugins, cycle, parts).await?;

    // Evaluator: feedback on each chosen run.
    let mut feedback: Vec<Feedback> = Vec::new();
    let mut eval_outcome: HashMap<RunId, ActionOutcome> = HashMap::new();
    if let Some(evaluator @ (handle, _)) = &cycle.evaluator {
        let texts = chosen.iter().map(|run| payload::json_text(&run.json)).collect();
        let context = rule.id.to_string();
        let results =
            call_each(plugins, evaluator, &context, texts, Capability::Evaluate, PluginSession::evaluate).await?;
        let now = Timestamp::now();
        let source = FeedbackSource::model(handle.name());
        for (record, result) in records.iter().zip(results) {
            let outcome = match result {
                Ok(evaluations) => {
                    let keys: Vec<String> = evaluations.iter().map(|e| e.key.clone()).collect();
                    feedback.extend(evaluations.into_iter().map(|e| Feedback {
                        id: FeedbackId::new_v7(),
                        run_id: Some(record.id),
                        trace_id: Some(record.trace_id),
                        session_id: Some(spec.session_id),
                        key: e.key,
                        score: e.score,
                        value: e.value,
                        comment: e.comment,
                        correction: None,
                        feedback_source: source.clone(),
                        extra: Some(json!({"rule_id": rule.id})),
                        created_at: now,
                        modified_at: now,
                    }));
                    ActionOutcome::success(json!({"feedback_keys": keys}))
                }
                Err(e) => ActionOutcome::error(format!("evaluate plugin: {e}")),
            };
            eval_outcome.insert(record.id, outcome);
        }
    }

    for record in &records {
        let outcomes = Outcomes {
            add_to_annotation_queue: queue_outcome.remove(&record.id),
            add_to_dataset: dataset_outcome.remove(&record.id),
            webhooks: webhook_outcome.remove(&record.id),
            evaluators: eval_outcome.remove(&record.id),
        };
        logs.push(log(rule, record, cycle.window_start, cycle.window_end, outcomes));
    }
    Ok(CycleCommit { candidates, logs, outbox, queued, examples, feedback, ..cycle.commit(after, to) })
}

/// Each run's outcome of one action.
pub(super) type RunOutcomes = HashMap<RunId, ActionOutcome>;

/// The annotation-queue action on `runs`: what to add to the queue (when
/// it still exists), and each run's outcome.
pub(super) fn queue_action(cycle: &Cycle<'_>, runs: &[RunId]) -> (Option<(QueueId, Vec<RunId>)>, RunOutcomes) {
    let Some((queue, exists)) = cycle.queue else { return (None, HashMap::new()) };
    let outcome = match exists {
        true => ActionOutcome::success(json!({"queue_id": queue})),
        false => ActionOutcome::error(format!("annotation queue {queue} no longer exists")),
    };
    let outcomes = runs.iter().map(|r| (*r, outcome.clone())).collect();
    (exists.then(|| (queue, runs.to_vec())), outcomes)
}

/// The webhook action on `parts` (with the rule's PagerDuty alerts, which
/// are targets of it): each through the transform plugin, then per target
/// through its message format, one outbox row per target; and each run's
/// outcome. A part whose transform fails is an
/// error for its runs; a format that fails leaves out its webhook only,
/// and the outcome lists why beside the deliveries queued.
pub(super) async fn webhook_action(
    plugins: &Arc<PluginRegistry>,
    cycle: &Cycle<'_>,
    parts: Vec<payload::Payload>,
) -> Result<(Vec<OutboxRow>, RunOutcomes), CycleError> {
    let (rule, spec) = (cycle.rule, &cycle.rule.spec);
    let mut outbox: Vec<OutboxRow> = Vec::new();
    let mut outcomes: HashMap<RunId, ActionOutcome> = HashMap::new();
    if parts.is_empty() {
        return Ok((outbox, outcomes));
    }
    let context = rule.id.to_string();
    let secrets = spec.signing_secrets(Timestamp::now());
    let texts: Vec<String> = parts.iter().map(|p| p.body.clone()).collect();
    let bodies: Vec<Result<String, PluginError>> = match &cycle.transformer {
        Some(t) => call_each(plugins, t, &context, texts, Capability::Transform, PluginSession::transform).await?,
        None => texts.into_iter().map(Ok).collect(),
    };
    let transformed: Vec<String> = bodies.iter().filter_map(|b| b.as_ref().ok().cloned()).collect();
    let formatted = format_each(plugins, &cycle.formats, &context, &transformed).await?;
    let mut ok = 0;
    for (part, body) in parts.iter().zip(bodies) {
        let outcome = match body {
            Ok(_) => {
                let (mut ids, mut errors) = (Vec::new(), Vec::new());
                for (i, target) in cycle.targets.iter().enumerate() {
                    match &formatted[i][ok] {
                        Ok(body) => {
                            let row = OutboxRow {
                                run_ids: part.run_ids.clone(),
                                ..OutboxRow::queued(rule.id, target, body.clone(), secrets.clone())
                            };
                            ids.push(row.id);
                            outbox.push(row);
                        }
                        Err(e) => errors.push(format!("{}.format: {e}", spec.target_name(i))),
                    }
                }
                ok += 1;
                match (ids.is_empty(), errors.is_empty()) {
                    (_, true) => ActionOutcome::pending(json!({"delivery_ids": ids})),
                    (true, false) => ActionOutcome::error(errors.join("; ")),
                    (false, false) => ActionOutcome::pending(json!({"delivery_ids": ids, "errors": errors})),
                }
            }
            Err(e) => ActionOutcome::error(format!("transform plugin: {e}")),
        };
        for run in &part.run_ids {
            outcomes.insert(*run, outcome.clone());
        }
    }
    Ok((outbox, outcomes))
}

/// A run's outcome per action (`None`: the rule has no such action).
#[derive(Default)]
pub(super) struct Outcomes {
    pub(super) add_to_annotation_queue: Option<ActionOutcome>,
    pub(super) add_to_dataset: Option<ActionOutcome>,
    pub(super) webhooks: Option<ActionOutcome>,
    pub(super) evaluators: Option<ActionOutcome>,
}

pub(super) fn log(rule: &Rule, run: &RunRecord, start: Timestamp, end: Timestamp, outcomes: Outcomes) -> RuleRunLog {
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
        add_to_annotation_queue: outcomes.add_to_annotation_queue,
        add_to_dataset: outcomes.add_to_dataset,
        webhooks: outcomes.webhooks,
        evaluators: outcomes.evaluators,
    }
}
