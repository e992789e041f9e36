//! Trying a rule before saving it: what it would have done over the
//! stored runs of a recent span, with nothing sent or stored.
//!
//! Input: a validated [`RuleSpec`] (not stored: it has no id, watermark or
//! log) and [`TrialLimits`]. The project's finished runs that started in
//! the span are read newest first, at most `max_candidates` of them,
//! through the rule's three filters and its match plugin; of the runs
//! selected, at most `max_runs` (the newest) go on to the actions in
//! LangSmith's order: the runs its annotation queue would get, the
//! examples its dataset would get, the webhook payloads it would queue
//! (after its transform plugin) and the feedback its evaluator would
//! write. A thread rule groups those runs into threads and acts only on
//! the threads idle now, as its next cycle would. Output: a [`Trial`].
//!
//! Unlike a cycle, a trial ignores the rule log (no run was acted on yet)
//! and sampling (a draw keyed by a rule id that does not exist yet would
//! not be the one the saved rule makes): it shows every run the rule
//! could act on. The plugins run under the rule's own limits, so a plugin
//! too slow for its deadline fails here as it would in a cycle.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde_json::{Value, json};

use super::dataset::example_of;
use super::pipeline::CycleError;
use crate::payload::{self, Needs, RenderedRun, ThreadPart};
use crate::plugins::{call_each, load};
use crate::select::{Budget, Selection};
use runhook_core::model::{Example, QueueId, Rule, RuleId, RuleSpec, RunId, RunRecord, Timestamp};
use runhook_plugins::{Capability, PluginRegistry, PluginSession};
use runhook_store::{RunCursor, RunQuery, Store};

/// Runs read per step.
const STEP: usize = 500;

/// How much of the store a trial reads and how much it returns.
#[derive(Debug, Clone, Copy)]
pub struct TrialLimits {
    /// Runs that started at or after this time are considered.
    pub since: Timestamp,
    /// Most runs read (newest first); the trial says when it stopped early.
    pub max_candidates: usize,
    /// Most selected runs that go through the actions and are returned.
    pub max_runs: usize,
    /// How long the filters may take in all.
    pub budget: std::time::Duration,
}

/// How the payloads are built, as the rule's cycles build them.
#[derive(Debug, Clone, Copy, Default)]
pub struct TrialPayloads<'a> {
    /// Large inputs and outputs by link.
    pub large: Option<&'a crate::payload::LargeFields>,
}

/// One payload the rule would queue (once per webhook).
#[derive(Debug)]
pub struct TrialPayload {
    /// The runs it carries.
    pub run_ids: Vec<RunId>,
    /// The body after the transform plugin, or why the plugin failed.
    pub body: Result<String, String>,
}

/// What the rule would have done.
#[derive(Debug, Default)]
pub struct Trial {
    /// Finished runs read from the span.
    pub scanned: usize,
    /// Whether every run of the span was read (false: `max_candidates` was reached).
    pub complete: bool,
    /// Runs that passed the filters.
    pub filtered: usize,
    /// Runs the match plugin (when there is one) kept too.
    pub matched: usize,
    /// The newest `max_runs` of them, rendered as a webhook carries them.
    pub runs: Vec<Arc<RenderedRun>>,
    /// Runs the match plugin failed on, with its error (at most `max_runs` of them).
    pub match_errors: Vec<(RunId, String)>,
    /// The payloads (none when the rule has no webhook).
    pub payloads: Vec<TrialPayload>,
    /// Per run shown, the feedback the evaluator would write, or its error.
    pub feedback: Vec<(RunId, Result<Vec<Value>, String>)>,
    /// The annotation queue and the runs it would get.
    pub queued: Option<(QueueId, Vec<RunId>)>,
    /// The examples the dataset would get.
    pub examples: Vec<Example>,
    /// A thread rule's threads among the runs shown (runs of no thread are
    /// left out), the latest activity last.
    pub threads: Vec<TrialThread>,
}

/// A thread a thread rule would hold or act on.
#[derive(Debug)]
pub struct TrialThread {
    /// The thread.
    pub thread_id: String,
    /// Its runs among those shown, earliest first.
    pub run_ids: Vec<RunId>,
    /// Its first run's start and its last run's end.
    pub span: (Timestamp, Timestamp),
    /// When it is (or was) idle long enough for the rule.
    pub idle_at: Timestamp,
    /// Whether it is idle now: the rule would act on it at its next cycle.
    pub due: bool,
}

/// Runs `spec` over the stored runs `limits` allow. Fails only when the
/// store, a filter's evaluation or a plugin's loading does.
pub async fn try_rule(
    store: &Arc<dyn Store>,
    plugins: &Arc<PluginRegistry>,
    spec: &RuleSpec,
    limits: TrialLimits,
    payloads: TrialPayloads<'_>,
) -> Result<Trial, CycleError> {
    let selection =
        Selection::parse(spec.filter.as_deref(), spec.trace_filter.as_deref(), spec.tree_filter.as_deref())?;
    let budget = Budget::within(limits.budget);
    let _abandon = budget.abandon_on_drop();
    let mut trial = Trial { complete: true, ..Trial::default() };

    // Stage 1: the filters, over the span newest first.
    let mut selected: Vec<RunRecord> = Vec::new();
    let mut query = RunQuery {
        sessions: vec![spec.session_id],
        start_time: Some(limits.since),
        limit: STEP,
        lean: !selection.needs_io(),
        ..RunQuery::default()
    };
    loop {
        let (page, next) = store.query_runs(&query).await?;
        query.cursor = page.last().map(|r| RunCursor { start_time: r.start_time, id: r.id });
        let mut finished: Vec<RunRecord> = page.into_iter().filter(|r| r.end_time.is_some()).collect();
        let room = limits.max_candidates - trial.scanned;
        if finished.len() > room {
            finished.truncate(room);
            trial.complete = false;
        }
        trial.scanned += finished.len();
        selected.extend(selection.retain(store.as_ref(), finished, &budget).await?);
        if next.is_none() {
            break;
        }
        if trial.scanned == limits.max_candidates {
            trial.complete = false;
            break;
        }
    }
    trial.filtered = selected.len();

    // Stage 2: the match plugin, on the whole runs as a cycle gives them,
    // a step at a time (newest first, as read), so a wide span holds a
    // step's whole runs at once, not all of them. Without a match plugin,
    // only the runs shown are read whole.
    // A rule's context for its plugins is its id; a trial's is a fresh one.
    let rule = Rule {
        id: RuleId::new_v4(),
        spec: spec.clone(),
        created_at: Timestamp::now(),
        updated_at: Timestamp::now(),
        created_seq: Default::default(),
    };
    let matcher = load(plugins, &spec.plugins.matcher, Capability::Match).await?;
    if matcher.is_none() {
        selected.truncate(limits.max_runs);
    }
    let mut kept: Vec<RenderedRun> = Vec::new();
    // Each run's thread and times, for a thread rule.
    let mut times: HashMap<RunId, (Option<String>, Timestamp, Timestamp)> = HashMap::new();
    for step in selected.chunks(STEP) {
        let ids: Vec<RunId> = step.iter().map(|r| r.id).collect();
        let mut whole = store.runs_by_ids(&ids).await?;
        whole.sort_by_key(|r| std::cmp::Reverse((r.start_time, r.id)));
        if spec.group_by.is_some() {
            let span = |r: &RunRecord| (r.thread_id.clone(), r.start_time, r.end_time.unwrap_or(r.start_time));
            times.extend(whole.iter().map(|r| (r.id, span(r))));
        }
        let rendered = payload::render(store.as_ref(), &whole, Needs::ALL).await?;
        let Some(matcher) = &matcher else {
            kept.extend(rendered);
            continue;
        };
        let texts = rendered.iter().map(|run| payload::json_text(&run.json)).collect();
        let context = rule.id.to_string();
        let verdicts = call_each(plugins, matcher, &context, texts, Capability::Match, PluginSession::matches).await?;
        for (run, verdict) in rendered.into_iter().zip(verdicts) {
            match verdict {
                Ok(true) => {
                    trial.matched += 1;
                    if kept.len() < limits.max_runs {
                        kept.push(run);
                    }
                }
                Ok(false) => {}
                Err(e) if trial.match_errors.len() < limits.max_runs => {
                    trial.match_errors.push((run.id, e.to_string()))
                }
                Err(_) => {}
            }
        }
    }
    if matcher.is_none() {
        trial.matched = trial.filtered;
    }
    trial.runs = kept.into_iter().map(Arc::new).collect();

    // A thread rule acts on the threads idle now, with two actions only.
    let acting: Vec<Arc<RenderedRun>> = match spec.group_by {
        None => trial.runs.clone(),
        Some(_) => {
            trial.runs.retain(|r| times.get(&r.id).is_some_and(|(thread, ..)| thread.is_some()));
            trial.threads = threads(spec, &trial.runs, &times);
            let due: HashSet<RunId> =
                trial.threads.iter().filter(|t| t.due).flat_map(|t| t.run_ids.iter().copied()).collect();
            trial.runs.iter().filter(|r| due.contains(&r.id)).cloned().collect()
        }
    };
    if let Some(queue) = spec.add_to_annotation_queue_id {
        trial.queued = Some((queue, acting.iter().map(|r| r.id).collect()));
    }
    if let Some(dataset) = spec.add_to_dataset_id {
        let now = Timestamp::now();
        let prefer = spec.add_to_dataset_prefer_correction;
        trial.examples = acting.iter().map(|run| example_of(rule.id, dataset, run, prefer, now)).collect();
    }

    // Stage 3: the webhook's payloads through the transform plugin.
    if !spec.webhooks.is_empty() && !acting.is_empty() {
        let parts = match spec.group_by {
            None => payload::payloads(
                rule.id,
                limits.since,
                Timestamp::now(),
                &acting,
                spec.max_runs_per_payload,
                payloads.large,
            ),
            Some(_) => {
                let by_id: HashMap<RunId, &Arc<RenderedRun>> = acting.iter().map(|r| (r.id, r)).collect();
                let parts: Vec<ThreadPart<Arc<RenderedRun>>> = trial
                    .threads
                    .iter()
                    .filter(|t| t.due)
                    .map(|t| ThreadPart {
                        thread_id: t.thread_id.clone(),
                        runs: t.run_ids.iter().filter_map(|id| by_id.get(id).map(|r| Arc::clone(r))).collect(),
                        start: t.span.0,
                        end: t.span.1,
                    })
                    .collect();
                let now = Timestamp::now();
                payload::thread_payloads(rule.id, limits.since, now, &parts, spec.max_runs_per_payload, payloads.large)
            }
        };
        let texts: Vec<String> = parts.iter().map(|p| p.body.clone()).collect();
        let bodies: Vec<Result<String, String>> =
            match load(plugins, &spec.plugins.transform, Capability::Transform).await? {
                None => texts.into_iter().map(Ok).collect(),
                Some(transformer) => call_each(
                    plugins,
                    &transformer,
                    &rule.id.to_string(),
                    texts,
                    Capability::Transform,
                    PluginSession::transform,
                )
                .await?
                .into_iter()
                .map(|b| b.map_err(|e| e.to_string()))
                .collect(),
            };
        trial.payloads =
            parts.into_iter().zip(bodies).map(|(p, body)| TrialPayload { run_ids: p.run_ids, body }).collect();
    }

    // Stage 4: the evaluator's feedback (a thread rule has none).
    if let Some(evaluator) = load(plugins, &spec.plugins.evaluate, Capability::Evaluate).await? {
        let texts = trial.runs.iter().map(|run| payload::json_text(&run.json)).collect();
        let context = rule.id.to_string();
        let results =
            call_each(plugins, &evaluator, &context, texts, Capability::Evaluate, PluginSession::evaluate).await?;
        trial.feedback = trial
            .runs
            .iter()
            .zip(results)
            .map(|(run, result)| {
                let result = result.map_err(|e| e.to_string()).map(|evaluations| {
                    evaluations
                        .into_iter()
                        .map(|e| json!({"key": e.key, "score": e.score, "value": e.value, "comment": e.comment}))
                        .collect()
                });
                (run.id, result)
            })
            .collect();
    }
    Ok(trial)
}

/// The threads of `runs` (each run's thread and times in `times`), the
/// latest activity last, each with when it goes idle under `spec`.
fn threads(
    spec: &RuleSpec,
    runs: &[Arc<RenderedRun>],
    times: &HashMap<RunId, (Option<String>, Timestamp, Timestamp)>,
) -> Vec<TrialThread> {
    let idle = chrono::Duration::seconds(i64::try_from(spec.thread_idle_seconds).unwrap_or(i64::MAX));
    let mut by_thread: HashMap<&str, Vec<(Timestamp, Timestamp, RunId)>> = HashMap::new();
    for run in runs {
        if let Some((Some(thread), start, end)) = times.get(&run.id) {
            by_thread.entry(thread).or_default().push((*end, *start, run.id));
        }
    }
    let now = Timestamp::now();
    let mut out: Vec<TrialThread> = by_thread
        .into_iter()
        .map(|(thread, mut runs)| {
            runs.sort();
            let start = runs.iter().map(|r| r.1).min().unwrap_or(now);
            let last = runs.last().map_or(now, |r| r.0);
            let idle_at = Timestamp::from_datetime(last.min(now).as_datetime() + idle);
            TrialThread {
                thread_id: thread.to_string(),
                run_ids: runs.iter().map(|r| r.2).collect(),
                span: (start, last),
                idle_at,
                due: idle_at <= now,
            }
        })
        .collect();
    out.sort_by(|a, b| (a.span.1, &a.thread_id).cmp(&(b.span.1, &b.thread_id)));
    out
}
