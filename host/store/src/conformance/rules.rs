//! [`RuleStore`](crate::RuleStore): rules and their progress, the cycle's
//! window, and a cycle's commit: whole, or nothing when it lost a race.

use serde_json::json;

use runhook_core::model::{
    ActionOutcome, ChangeSeq, Feedback, FeedbackId, FeedbackSource, RuleId, RuleSpec, RunRecord, RunWrite, Timestamp,
};

use super::{Harness, finished_run, fresh, fresh_row, hook, horizon_past, post, queue, rang, rule};
use crate::{CycleCommit, DeliveryQuery, RuleRunLog, StoreError};

fn log(rule: RuleId, run: &RunRecord, window_end: Timestamp) -> RuleRunLog {
    RuleRunLog {
        rule_id: rule,
        run_id: run.id,
        run_name: run.name.clone(),
        run_type: run.run_type.as_str().into(),
        session_id: run.session_id,
        thread_id: None,
        window_start: window_end,
        window_end,
        applied_at: Timestamp::now(),
        add_to_dataset: None,
        add_to_annotation_queue: None,
        webhooks: Some(ActionOutcome::pending(json!({"delivery_ids": []}))),
        evaluators: None,
    }
}

fn commit(rule: RuleId, from: ChangeSeq, to: ChangeSeq) -> CycleCommit {
    let now = Timestamp::now();
    CycleCommit::new(rule, from, to, now, now)
}

/// Rules read back as written; an update keeps the rule's progress; a
/// deleted rule is gone.
pub async fn rules_are_created_updated_and_deleted_keeping_their_progress(h: &dyn Harness) {
    let store = fresh(h).await;
    let seed = post(store.as_ref(), vec![finished_run("p", 5)]).await;
    let horizon = horizon_past(store.as_ref(), &seed).await;
    let project = runhook_core::model::SessionId::new_v4();
    let spec = RuleSpec {
        filter: Some("eq(run_type, \"llm\")".into()),
        ..RuleSpec::new("a", project, vec![hook("https://a.example/x")])
    };
    let id = RuleId::new_v4();
    let created = store.create_rule(id, &spec).await.unwrap();
    assert_eq!((created.id, &created.spec), (id, &spec));
    assert_eq!(store.get_rule(id).await.unwrap().unwrap().spec, spec);
    let state = store.rule_state(id).await.unwrap().unwrap();
    let after = store.change_seq().await.unwrap();
    assert!(
        horizon <= state.watermark && state.watermark <= after,
        "live processing starts at the change sequence current when the rule was created"
    );

    // Progress made, then the definition replaced: the progress stays.
    let later = post(store.as_ref(), vec![finished_run("p", 4)]).await;
    let moved = horizon_past(store.as_ref(), &later).await;
    store.commit_cycle(commit(id, state.watermark, moved)).await.unwrap();
    let renamed = RuleSpec { display_name: "b".into(), ..spec.clone() };
    let updated = store.update_rule(id, &renamed).await.unwrap();
    assert_eq!(updated.spec.display_name, "b");
    assert_eq!(store.rule_state(id).await.unwrap().unwrap().watermark, moved);

    let second = store.create_rule(RuleId::new_v4(), &spec).await.unwrap();
    let listed: Vec<RuleId> = store.list_rules().await.unwrap().iter().map(|r| r.id).collect();
    assert_eq!(listed, [id, second.id], "oldest first");

    let unknown = RuleId::new_v4();
    assert!(matches!(store.update_rule(unknown, &spec).await, Err(StoreError::RuleNotFound(r)) if r == unknown));
    assert!(store.delete_rule(id).await.unwrap());
    assert!(!store.delete_rule(id).await.unwrap());
    assert!(store.get_rule(id).await.unwrap().is_none());
    assert!(store.rule_state(id).await.unwrap().is_none());
}

/// A cycle's candidates are the rule's project's finished runs changed in
/// (after, upto], oldest change first, at most `limit`.
pub async fn a_cycle_reads_its_window_of_finished_runs(h: &dyn Harness) {
    let store = fresh(h).await;
    let seed = post(store.as_ref(), vec![finished_run("mine", 9)]).await[0];
    horizon_past(store.as_ref(), &[seed]).await;
    let project = store.get_run(seed).await.unwrap().unwrap().session_id;
    let r = rule(store.as_ref(), project, vec![]).await;
    let after = store.rule_state(r.id).await.unwrap().unwrap().watermark;
    let running = RunWrite { end_time: None, ..finished_run("mine", 5) };
    let theirs = finished_run("theirs", 5);
    let mine: Vec<_> = (0..3).map(|i| finished_run("mine", 5 - i)).collect();
    let mine_ids = post(store.as_ref(), mine).await;
    let others = post(store.as_ref(), vec![running, theirs]).await;
    let upto = horizon_past(store.as_ref(), &[mine_ids.clone(), others].concat()).await;

    let all = store.window_runs(project, after, upto, 100).await.unwrap();
    let ids: Vec<_> = all.iter().map(|r| r.id).collect();
    assert_eq!(ids.len(), 3, "only finished runs of the rule's project, changed since it was created");
    assert!(all.iter().all(|r| r.inputs.is_none() && r.outputs.is_none()), "lean: the large fields are not read");
    assert!(all.iter().all(|r| r.name == "ChatOpenAI" && r.session_id == project), "the rest is");
    assert!(all.windows(2).all(|w| w[0].seq < w[1].seq), "oldest change first");
    assert!(mine_ids.iter().all(|id| ids.contains(id)));
    let first = store.window_runs(project, after, upto, 2).await.unwrap();
    assert_eq!(first.iter().map(|r| r.id).collect::<Vec<_>>(), ids[..2]);
    let rest = store.window_runs(project, first[1].seq, upto, 2).await.unwrap();
    assert_eq!(rest.iter().map(|r| r.id).collect::<Vec<_>>(), ids[2..]);
    assert!(store.window_runs(project, upto, upto, 10).await.unwrap().is_empty());
}

/// With `backfill_from`, runs from before the rule that started since then
/// are candidates too; without it, they are not.
pub async fn a_backfilling_rule_sees_runs_from_before_it(h: &dyn Harness) {
    let store = fresh(h).await;
    let old = post(store.as_ref(), vec![finished_run("p", 600)]).await[0];
    let recent = post(store.as_ref(), vec![finished_run("p", 30)]).await[0];
    horizon_past(store.as_ref(), &[old, recent]).await;
    let project = store.get_run(old).await.unwrap().unwrap().session_id;
    let live = rule(store.as_ref(), project, vec![]).await;
    let spec = RuleSpec { backfill_from: Some(super::ago(60)), ..RuleSpec::new("backfill", project, vec![]) };
    let backfill = store.create_rule(RuleId::new_v4(), &spec).await.unwrap();
    let upto = horizon_past(store.as_ref(), &[old, recent]).await;

    let state = store.rule_state(backfill.id).await.unwrap().unwrap();
    let window = store.window_runs(project, state.watermark, upto, 10).await.unwrap();
    let seen: Vec<_> = window.iter().filter(|r| backfill.sees(r)).map(|r| r.id).collect();
    assert_eq!(seen, [recent], "started since backfill_from only");
    let state = store.rule_state(live.id).await.unwrap().unwrap();
    assert!(store.window_runs(project, state.watermark, upto, 10).await.unwrap().is_empty());
    let all = store.window_runs(project, ChangeSeq::START, upto, 10).await.unwrap();
    assert_eq!(all.len(), 2, "the window holds both");
    assert!(!all.iter().any(|r| live.sees(r)), "a live rule considers neither");
}

/// A cycle's watermark, log, outbox rows, feedback (with its run's new
/// change sequence) and summary commit together; the bell rings.
pub async fn a_cycle_commits_whole(h: &dyn Harness) {
    let store = fresh(h).await;
    let seed = post(store.as_ref(), vec![finished_run("p", 9)]).await[0];
    horizon_past(store.as_ref(), &[seed]).await;
    let project = store.get_run(seed).await.unwrap().unwrap().session_id;
    let r = rule(store.as_ref(), project, vec![hook("https://hooks.example.com/x")]).await;
    let from = store.rule_state(r.id).await.unwrap().unwrap().watermark;
    let run_id = post(store.as_ref(), vec![finished_run("p", 5)]).await[0];
    let run = store.get_run(run_id).await.unwrap().unwrap();
    let to = horizon_past(store.as_ref(), &[run_id]).await;
    rang(store.as_ref());

    let end = Timestamp::now();
    let row = super::OutboxRow { run_ids: vec![run_id], ..fresh_row(r.id) };
    let now = Timestamp::now();
    let fb = Feedback {
        id: FeedbackId::new_v7(),
        run_id: Some(run_id),
        trace_id: Some(run_id),
        session_id: Some(project),
        key: "score".into(),
        score: Some(0.5),
        value: None,
        comment: None,
        correction: None,
        feedback_source: FeedbackSource::model("evaluator"),
        extra: Some(json!({"rule_id": r.id})),
        created_at: now,
        modified_at: now,
    };
    let c = CycleCommit {
        candidates: 1,
        logs: vec![log(r.id, &run, end)],
        outbox: vec![row.clone()],
        queued: None,
        examples: vec![],
        held: vec![],
        released: vec![],
        feedback: vec![fb.clone()],
        error: None,
        lease: None,
        window_end: end,
        ..commit(r.id, from, to)
    };
    store.commit_cycle(c).await.unwrap();

    let state = store.rule_state(r.id).await.unwrap().unwrap();
    assert_eq!((state.watermark, state.window_end), (to, end));
    assert_eq!(store.actioned(r.id, &[run_id, seed]).await.unwrap().into_iter().collect::<Vec<_>>(), [run_id]);
    assert_eq!(store.rules_acted_on(run_id).await.unwrap(), [r.id]);
    assert_eq!(store.rules_acted_on(seed).await.unwrap(), []);
    let logs = store.rule_logs(r.id, 10, 0).await.unwrap();
    assert_eq!(logs.iter().map(|l| l.run_id).collect::<Vec<_>>(), [run_id]);
    let d = store.get_delivery(row.id).await.unwrap().unwrap();
    assert_eq!((d.status.as_str(), d.run_ids.clone(), d.url.clone()), ("pending", vec![run_id], row.url.clone()));
    assert!(rang(store.as_ref()), "the bell did not ring for the queued delivery");
    assert_eq!(store.feedback_for_runs(&[run_id]).await.unwrap().iter().map(|f| f.id).collect::<Vec<_>>(), [fb.id]);
    let moved = store.get_run(run_id).await.unwrap().unwrap().seq;
    assert!(moved > to, "the evaluator's feedback did not move its run past the window");
    let cycles = store.rule_cycles(r.id, 10).await.unwrap();
    assert_eq!((cycles.len(), cycles[0].candidates, cycles[0].actioned), (1, 1, 1));
    let stats = store
        .rule_stats(Timestamp::from_datetime(now.as_datetime() - chrono::Duration::seconds(60)), None)
        .await
        .unwrap();
    let want = crate::RuleStats { cycles: 1, seen: 1, matched: 1, pending: 1, ..crate::RuleStats::none(r.id) };
    assert_eq!(stats, [want]);
    assert_eq!(
        store
            .rule_stats(Timestamp::from_datetime(end.as_datetime() + chrono::Duration::seconds(60)), None)
            .await
            .unwrap(),
        [],
        "a span after the cycle holds nothing"
    );

    // A cycle that failed before committing is listed with its error and counted.
    let failed = crate::CycleSummary {
        window_start: end,
        window_end: end,
        candidates: 0,
        actioned: 0,
        error: Some("plugin worker failed".into()),
    };
    store.record_failed_cycle(r.id, &failed).await.unwrap();
    store.record_failed_cycle(RuleId::new_v4(), &failed).await.unwrap();
    let cycles = store.rule_cycles(r.id, 10).await.unwrap();
    assert_eq!((cycles.len(), cycles[0].error.as_deref()), (2, Some("plugin worker failed")));
    let day = Timestamp::from_datetime(now.as_datetime() - chrono::Duration::seconds(60));
    let stats = store.rule_stats(day, None).await.unwrap();
    assert_eq!((stats.len(), stats[0].cycles, stats[0].failed_cycles), (1, 2, 1), "a gone rule's failure is not kept");
    assert_eq!(store.rule_stats(day, Some(r.id)).await.unwrap(), stats, "one rule's");
    assert_eq!(store.rule_stats(day, Some(RuleId::new_v4())).await.unwrap(), [], "another rule's");
}

/// A cycle that started from a watermark that has moved since is refused
/// with a conflict, and nothing of it is kept.
pub async fn a_cycle_whose_watermark_moved_commits_nothing(h: &dyn Harness) {
    let store = fresh(h).await;
    let run_id = post(store.as_ref(), vec![finished_run("p", 9)]).await[0];
    let run = store.get_run(run_id).await.unwrap().unwrap();
    horizon_past(store.as_ref(), &[run_id]).await;
    let r = rule(store.as_ref(), run.session_id, vec![hook("https://hooks.example.com/x")]).await;
    let from = store.rule_state(r.id).await.unwrap().unwrap().watermark;
    let later = post(store.as_ref(), vec![finished_run("p", 5)]).await;
    let to = horizon_past(store.as_ref(), &later).await;
    store.commit_cycle(commit(r.id, from, to)).await.unwrap();
    rang(store.as_ref());

    let stale = CycleCommit {
        logs: vec![log(r.id, &run, Timestamp::now())],
        outbox: vec![fresh_row(r.id)],
        ..commit(r.id, from, to)
    };
    let refused = store.commit_cycle(stale).await;
    assert!(matches!(refused, Err(StoreError::Conflict(_))), "{refused:?}");
    assert!(store.rule_logs(r.id, 10, 0).await.unwrap().is_empty());
    assert!(store.list_deliveries(&DeliveryQuery { limit: 10, ..Default::default() }).await.unwrap().is_empty());
    assert_eq!(store.rule_cycles(r.id, 10).await.unwrap().len(), 1);
    assert!(!rang(store.as_ref()));
    // A deleted rule's cycle conflicts too.
    store.delete_rule(r.id).await.unwrap();
    assert!(matches!(store.commit_cycle(commit(r.id, to, to)).await, Err(StoreError::Conflict(_))));
}

/// Deleting a rule drops its pending deliveries; finished ones stay listed.
pub async fn deleting_a_rule_drops_its_pending_deliveries(h: &dyn Harness) {
    let store = fresh(h).await;
    let r = rule(store.as_ref(), runhook_core::model::SessionId::new_v4(), vec![]).await;
    let rows = [fresh_row(r.id), fresh_row(r.id)];
    queue(store.as_ref(), r.id, &rows).await;
    super::record(store.as_ref(), &[super::delivered(&rows[0], 1)]).await.unwrap();
    assert!(store.delete_rule(r.id).await.unwrap());
    let left = store.list_deliveries(&DeliveryQuery { limit: 10, ..Default::default() }).await.unwrap();
    assert_eq!(left.iter().map(|d| (d.id, d.status.as_str())).collect::<Vec<_>>(), [(rows[0].id, "delivered")]);
    assert_eq!(store.outbox_stats().await.unwrap().0, 0);
}

/// Log pages continue after their cursor, in order, ties on `applied_at`
/// broken by run id; lines added meanwhile shift nothing.
pub async fn rule_log_pages_continue_after_their_cursor(h: &dyn Harness) {
    let store = fresh(h).await;
    let seed = post(store.as_ref(), vec![finished_run("p", 9)]).await[0];
    horizon_past(store.as_ref(), &[seed]).await;
    let project = store.get_run(seed).await.unwrap().unwrap().session_id;
    let r = rule(store.as_ref(), project, vec![]).await;
    let ids = post(store.as_ref(), (0..5).map(|i| finished_run("p", i)).collect()).await;
    let to = horizon_past(store.as_ref(), &ids).await;
    let runs: Vec<RunRecord> = store.runs_by_ids(&ids).await.unwrap();
    let now = Timestamp::now();
    // Three lines share one time.
    let logs: Vec<RuleRunLog> = runs
        .iter()
        .enumerate()
        .map(|(i, run)| {
            let at = Timestamp::from_datetime(now.as_datetime() - chrono::Duration::seconds([0, 0, 0, 5, 9][i]));
            RuleRunLog { applied_at: at, ..log(r.id, run, now) }
        })
        .collect();
    let from = store.rule_state(r.id).await.unwrap().unwrap().watermark;
    store.commit_cycle(CycleCommit { candidates: 5, logs, ..commit(r.id, from, to) }).await.unwrap();
    let all = store.rule_logs(r.id, 10, 0).await.unwrap();
    let mut paged = Vec::new();
    let mut cursor: Option<crate::RuleLogCursor> = None;
    loop {
        let page = store.rule_log_page(r.id, cursor.as_ref(), 2).await.unwrap();
        if page.is_empty() {
            break;
        }
        cursor = page.last().map(|l| crate::RuleLogCursor { applied_at: l.applied_at, run_id: l.run_id });
        paged.extend(page);
        assert!(paged.len() <= 5, "pages repeat lines");
    }
    let order = |logs: &[RuleRunLog]| logs.iter().map(|l| l.run_id).collect::<Vec<_>>();
    assert_eq!(order(&paged), order(&all), "pages read as the whole log does");
    assert_eq!(paged.len(), 5);
    // A newer line does not move the pages after a cursor.
    let first = store.rule_log_page(r.id, None, 2).await.unwrap();
    let after = crate::RuleLogCursor { applied_at: first[1].applied_at, run_id: first[1].run_id };
    let newer = post(store.as_ref(), vec![finished_run("p", 0)]).await;
    let to2 = horizon_past(store.as_ref(), &newer).await;
    let run = store.get_run(newer[0]).await.unwrap().unwrap();
    store
        .commit_cycle(CycleCommit { logs: vec![log(r.id, &run, Timestamp::now())], ..commit(r.id, to, to2) })
        .await
        .unwrap();
    let next = store.rule_log_page(r.id, Some(&after), 10).await.unwrap();
    assert_eq!(order(&next), order(&all[2..]));
}

/// A cycle's examples are added with it, each once: a cycle repeated
/// (after a crash, on another replica) with the same example ids adds
/// nothing, and a dataset deleted meanwhile takes none.
pub async fn a_cycle_adds_its_examples_once(h: &dyn Harness) {
    let store = fresh(h).await;
    let seed = post(store.as_ref(), vec![finished_run("p", 9)]).await[0];
    horizon_past(store.as_ref(), &[seed]).await;
    let project = store.get_run(seed).await.unwrap().unwrap().session_id;
    let r = rule(store.as_ref(), project, vec![]).await;
    let now = Timestamp::now();
    let dataset = runhook_core::model::Dataset {
        id: runhook_core::model::DatasetId::new_v4(),
        name: "from rules".into(),
        description: None,
        data_type: "kv".into(),
        inputs_schema: None,
        outputs_schema: None,
        metadata: None,
        created_at: now,
        modified_at: now,
        example_count: 0,
    };
    store.create_dataset(&dataset).await.unwrap();
    let example = |n: u32, dataset_id| runhook_core::model::Example {
        id: runhook_core::model::ExampleId(uuid::Uuid::new_v5(&r.id.0, &n.to_be_bytes())),
        dataset_id,
        inputs: json!({"n": n}),
        outputs: Some(json!({"output": "corrected"})),
        metadata: None,
        splits: vec!["base".into()],
        source_run_id: Some(seed),
        created_at: now,
        modified_at: now,
    };
    let ids = post(store.as_ref(), vec![finished_run("p", 1)]).await;
    let to = horizon_past(store.as_ref(), &ids).await;
    let from = store.rule_state(r.id).await.unwrap().unwrap().watermark;
    let examples = vec![example(1, dataset.id), example(2, dataset.id)];
    store.commit_cycle(CycleCommit { examples: examples.clone(), ..commit(r.id, from, to) }).await.unwrap();
    let count = || async { store.get_dataset(dataset.id).await.unwrap().unwrap().example_count };
    assert_eq!(count().await, 2);
    // The same examples again, and one for a dataset that is gone.
    let more = post(store.as_ref(), vec![finished_run("p", 0)]).await;
    let to2 = horizon_past(store.as_ref(), &more).await;
    let gone = runhook_core::model::DatasetId::new_v4();
    let again = vec![example(1, dataset.id), example(2, dataset.id), example(3, gone)];
    store.commit_cycle(CycleCommit { examples: again, ..commit(r.id, to, to2) }).await.unwrap();
    assert_eq!(count().await, 2, "a repeated example was added twice");
    let stored = store.get_example(examples[0].id).await.unwrap().unwrap();
    assert_eq!((stored.outputs, stored.source_run_id), (Some(json!({"output": "corrected"})), Some(seed)));
    assert!(store.get_example(example(3, gone).id).await.unwrap().is_none());
}

/// Retention deletes cycle summaries of windows ended before the cutoff,
/// a chunk at a time, but never a rule's newest.
pub async fn old_cycle_summaries_are_pruned_but_each_rules_newest(h: &dyn Harness) {
    let store = fresh(h).await;
    let project = runhook_core::model::SessionId::new_v4();
    let (a, b) = (rule(store.as_ref(), project, vec![]).await, rule(store.as_ref(), project, vec![]).await);
    let days = |n: i64| super::ago(n * 24 * 60);
    for (r, ended) in [(&a, days(40)), (&a, days(35)), (&a, days(0)), (&b, days(40))] {
        let at = store.rule_state(r.id).await.unwrap().unwrap().watermark;
        store.commit_cycle(CycleCommit::new(r.id, at, at, ended, ended)).await.unwrap();
    }
    assert_eq!(store.prune_cycles(days(30), 1).await.unwrap(), 1);
    assert_eq!(store.prune_cycles(days(30), 10).await.unwrap(), 1);
    assert_eq!(store.prune_cycles(days(30), 10).await.unwrap(), 0);
    let (a_left, b_left) = (store.rule_cycles(a.id, 10).await.unwrap(), store.rule_cycles(b.id, 10).await.unwrap());
    assert_eq!((a_left.len(), b_left.len()), (1, 1), "each rule keeps its newest: {a_left:?} {b_left:?}");
    assert!(a_left[0].window_end > days(1) && b_left[0].window_end < days(39));
}
