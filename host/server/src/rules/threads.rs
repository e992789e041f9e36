//! Thread rules (`group_by: "thread_id"`): a rule that acts on
//! conversations, not on runs one by one.
//!
//! A thread rule's window pages go through the filters and the match
//! plugin as any rule's do, but what passes is held (`hold`), not acted
//! on: each run with a thread id is kept in the store with its activity
//! (its end, or its start; never later than now), in the same commit that
//! moves the watermark. Runs without a thread id are not a thread's and
//! are left alone. After the window, `act_on_idle` takes the threads whose
//! latest held activity is older than the rule's idle time (at most 500,
//! longest idle first), draws each thread's sample, and acts on their runs
//! in LangSmith's order with the two actions thread rules have: the
//! annotation queue, then the webhook, whose payloads carry `threads`
//! beside the usual keys (see `payload::thread_payloads`). The same commit
//! logs every run acted on and releases the threads' held runs, so a
//! crash before it repeats the act and one after it never does. A thread
//! that gets runs after it was acted on is held again: a new idle period,
//! acted on with those runs.
//!
//! Idleness is judged by the runs' own times, as the trace shows the
//! conversation, not by when the SDK's batches arrived.

use std::collections::HashMap;
use std::sync::Arc;

use super::pipeline::{Cycle, CycleError, Engine, Matched, Outcomes, log, queue_action, webhook_action};
use super::sample::thread_sampled;
use crate::payload::{self, Needs, RenderedRun, ThreadPart};
use runhook_core::model::rule::defaults::MAX_THREADS_PER_CYCLE;
use runhook_core::model::{RunId, RunRecord, Timestamp};
use runhook_store::{ChangeSeq, CycleCommit, Lease, ThreadRun};

/// The window phase's commit: the watermark moved from `after` to `to`,
/// the matched runs with a thread id held, the log lines of runs a plugin
/// failed on.
pub(super) fn hold(
    cycle: &Cycle<'_>,
    matched: Matched,
    after: ChangeSeq,
    to: ChangeSeq,
    candidates: usize,
) -> CycleCommit {
    let now = Timestamp::now();
    let held = matched
        .chosen
        .iter()
        .filter_map(|(_, record)| {
            let thread_id = record.thread_id.clone()?;
            Some(ThreadRun { run_id: record.id, thread_id, activity: activity(record).min(now) })
        })
        .collect();
    CycleCommit { candidates, logs: matched.logs, held, ..cycle.commit(after, to) }
}

/// When a run last did something, by its own times.
fn activity(run: &RunRecord) -> Timestamp {
    run.end_time.unwrap_or(run.start_time).max(run.start_time)
}

/// What acting on idle threads did.
#[derive(Debug, Default)]
pub(super) struct Acted {
    /// Runs acted on.
    pub(super) runs: usize,
    /// Deliveries queued.
    pub(super) deliveries: usize,
    /// When the next thread is due (see `CycleReport::next_thread_due`).
    pub(super) next_due: Option<Timestamp>,
}

/// Acts on the rule's threads idle for its idle time, in one commit at
/// watermark `at` (which it does not move).
pub(super) async fn act_on_idle(
    engine: &Engine,
    cycle: &Cycle<'_>,
    at: ChangeSeq,
    lease: Option<&Lease>,
) -> Result<Acted, CycleError> {
    let (store, rule) = (&engine.store, cycle.rule);
    let spec = &rule.spec;
    let idle = chrono::Duration::seconds(i64::try_from(spec.thread_idle_seconds).unwrap_or(i64::MAX));
    let now = Timestamp::now();
    let due =
        store.due_threads(rule.id, Timestamp::from_datetime(now.as_datetime() - idle), MAX_THREADS_PER_CYCLE).await?;
    let next_due = match due.more {
        true => Some(now),
        false => due.next_last_activity.map(|t| Timestamp::from_datetime(t.as_datetime() + idle)),
    };
    let mut acted = Acted { next_due, ..Acted::default() };
    if due.threads.is_empty() {
        return Ok(acted);
    }
    let released: Vec<RunId> = due.threads.iter().flat_map(|t| t.runs.iter().map(|r| r.run_id)).collect();
    let chosen: Vec<_> =
        due.threads.iter().filter(|t| thread_sampled(rule.id, &t.thread_id, spec.sampling_rate)).collect();
    let ids: Vec<RunId> = chosen.iter().flat_map(|t| t.runs.iter().map(|r| r.run_id)).collect();
    let records = store.runs_by_ids(&ids).await?;
    let rendered = payload::render(store.as_ref(), &records, Needs::ALL).await?;
    let rendered: HashMap<RunId, Arc<RenderedRun>> = rendered.into_iter().map(|r| (r.id, Arc::new(r))).collect();
    let records: HashMap<RunId, RunRecord> = records.into_iter().map(|r| (r.id, r)).collect();
    // A held run gone from the store since (retention) is left out.
    let parts: Vec<ThreadPart<Arc<RenderedRun>>> = chosen
        .iter()
        .filter_map(|t| {
            let runs: Vec<&RunRecord> = t.runs.iter().filter_map(|r| records.get(&r.run_id)).collect();
            let start = runs.iter().map(|r| r.start_time).min()?;
            let end = runs.iter().map(|r| activity(r)).max()?;
            let runs = runs.iter().filter_map(|r| rendered.get(&r.id).cloned()).collect();
            Some(ThreadPart { thread_id: t.thread_id.clone(), runs, start, end })
        })
        .collect();
    let ids: Vec<RunId> = parts.iter().flat_map(|t| t.runs.iter().map(|r| r.id)).collect();

    // LangSmith's order: the annotation queue, then the webhook.
    let (queued, mut queue_outcome) = queue_action(cycle, &ids);
    let payloads = match cycle.targets.is_empty() || parts.is_empty() {
        true => Vec::new(),
        false => payload::thread_payloads(
            rule.id,
            cycle.window_start,
            cycle.window_end,
            &parts,
            spec.max_runs_per_payload,
            cycle.large,
        ),
    };
    let (outbox, mut webhook_outcome) = webhook_action(&engine.plugins, cycle, payloads).await?;
    let logs = ids
        .iter()
        .filter_map(|id| records.get(id))
        .map(|record| {
            let outcomes = Outcomes {
                add_to_annotation_queue: queue_outcome.remove(&record.id),
                webhooks: webhook_outcome.remove(&record.id),
                ..Outcomes::default()
            };
            log(rule, record, cycle.window_start, cycle.window_end, outcomes)
        })
        .collect::<Vec<_>>();
    (acted.runs, acted.deliveries) = (logs.len(), outbox.len());
    let commit = CycleCommit { logs, outbox, queued, released, lease: lease.cloned(), ..cycle.commit(at, at) };
    store.commit_cycle(commit).await?;
    Ok(acted)
}
