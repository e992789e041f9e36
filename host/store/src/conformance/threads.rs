//! Thread rules' held runs ([`RuleStore::due_threads`](crate::RuleStore::due_threads)
//! and a cycle's `held` and `released`): a thread is due once its latest
//! activity is older than the cutoff, longest idle first; holding a run
//! twice keeps its later activity; released runs are gone, and a run held
//! after its thread's release starts a new period.

use runhook_core::model::{RunId, SessionId};

use super::{Harness, ago, fresh, rule};
use crate::{CycleCommit, DueThreads, ThreadRun};

fn held(thread: &str, minutes_ago: i64) -> ThreadRun {
    ThreadRun { run_id: RunId::new_v4(), thread_id: thread.into(), activity: ago(minutes_ago) }
}

fn threads(due: &DueThreads) -> Vec<(&str, Vec<RunId>)> {
    due.threads.iter().map(|t| (t.thread_id.as_str(), t.runs.iter().map(|r| r.run_id).collect())).collect()
}

pub async fn held_runs_wait_until_their_thread_is_idle(h: &dyn Harness) {
    let store = fresh(h).await;
    let r = rule(store.as_ref(), SessionId::new_v4(), vec![]).await;
    let at = store.rule_state(r.id).await.unwrap().unwrap().watermark;
    let commit = || CycleCommit::new(r.id, at, at, ago(0), ago(0));
    let (a1, a2, b1, c1) = (held("a", 30), held("a", 20), held("b", 15), held("c", 2));
    let all = vec![a2.clone(), a1.clone(), b1.clone(), c1.clone()];
    store.commit_cycle(CycleCommit { held: all, ..commit() }).await.unwrap();
    // Held again with an earlier activity: the later one stays.
    store
        .commit_cycle(CycleCommit { held: vec![ThreadRun { activity: ago(40), ..a2.clone() }], ..commit() })
        .await
        .unwrap();

    let due = store.due_threads(r.id, ago(10), 500).await.unwrap();
    assert_eq!(threads(&due), vec![("a", vec![a1.run_id, a2.run_id]), ("b", vec![b1.run_id])]);
    assert!(!due.more);
    assert_eq!(due.next_last_activity.map(|t| t.to_naive_string()), Some(c1.activity.to_naive_string()));
    assert_eq!(due.threads[0].span(), Some((a1.activity, a2.activity)));

    let first = store.due_threads(r.id, ago(10), 1).await.unwrap();
    assert_eq!(threads(&first), vec![("a", vec![a1.run_id, a2.run_id])]);
    assert!(first.more, "b is idle too");

    // Released: a is no longer held; a run of a held after starts anew.
    store.commit_cycle(CycleCommit { released: vec![a1.run_id, a2.run_id], ..commit() }).await.unwrap();
    assert_eq!(threads(&store.due_threads(r.id, ago(10), 500).await.unwrap()), vec![("b", vec![b1.run_id])]);
    let a3 = held("a", 12);
    store.commit_cycle(CycleCommit { held: vec![a3.clone()], ..commit() }).await.unwrap();
    let due = store.due_threads(r.id, ago(10), 500).await.unwrap();
    assert_eq!(threads(&due), vec![("b", vec![b1.run_id]), ("a", vec![a3.run_id])]);

    // Nothing is due before its idle time, and nothing after the rule is gone.
    assert!(store.due_threads(r.id, ago(60), 500).await.unwrap().threads.is_empty());
    store.delete_rule(r.id).await.unwrap();
    assert_eq!(store.due_threads(r.id, ago(0), 500).await.unwrap(), DueThreads::default());
}
