//! [`RunStore`](crate::RunStore): ingest's merge and idempotency, projects,
//! feedback, the change sequence, reads.

use bytes::Bytes;
use serde_json::json;

use runhook_core::model::{
    Feedback, FeedbackId, FeedbackSource, RunId, RunRecord, RunType, RunWrite, Session, SessionId, Timestamp,
};

use super::{Harness, finished_run, fresh, horizon_past, post};
use crate::{Attachment, IngestBatch, IngestSummary, RunQuery, SessionQuery, StoreError};

fn feedback(run: RunId, key: &str) -> Feedback {
    let now = Timestamp::now();
    Feedback {
        id: FeedbackId::new_v7(),
        run_id: Some(run),
        trace_id: Some(run),
        session_id: None,
        key: key.into(),
        score: Some(1.0),
        value: None,
        comment: None,
        correction: None,
        feedback_source: FeedbackSource::model("conformance"),
        extra: None,
        created_at: now,
        modified_at: now,
    }
}

fn patches(patches: Vec<RunWrite>, patch_creates: bool) -> IngestBatch {
    IngestBatch { patches, patch_creates, ..IngestBatch::default() }
}

/// A post fills what a run lacks, a patch overwrites what it carries, in
/// either order; a patch may create a run only where the SDK reorders.
pub async fn ingest_merges_posts_and_patches_in_any_order(h: &dyn Harness) {
    let store = fresh(h).await;
    // Post, then patch.
    let mut started = finished_run("p", 5);
    started.end_time = None;
    let a = started.id.unwrap();
    let s = store.ingest(IngestBatch { posts: vec![started], ..IngestBatch::default() }).await.unwrap();
    assert_eq!(s, IngestSummary { created: 1, ..IngestSummary::default() });
    let end = Timestamp::now();
    let done =
        RunWrite { id: Some(a), end_time: Some(end), outputs: Some(json!({"answer": 42})), ..RunWrite::default() };
    let s = store.ingest(patches(vec![done], false)).await.unwrap();
    assert_eq!(s, IngestSummary { updated: 1, ..IngestSummary::default() });
    let run = store.get_run(a).await.unwrap().unwrap();
    assert_eq!((run.end_time, run.outputs.clone()), (Some(end), Some(json!({"answer": 42}))));
    assert_eq!(run.inputs, Some(json!({"question": "why?"})));

    // Patch (creating), then a post that only fills what is missing.
    let mut patch = finished_run("p", 5);
    patch.name = Some("from the patch".into());
    patch.inputs = None;
    let b = patch.id.unwrap();
    store.ingest(patches(vec![patch], true)).await.unwrap();
    let late = RunWrite {
        id: Some(b),
        name: Some("from the post".into()),
        inputs: Some(json!({"late": true})),
        ..finished_run("p", 5)
    };
    store.ingest(IngestBatch { posts: vec![late], ..IngestBatch::default() }).await.unwrap();
    let run = store.get_run(b).await.unwrap().unwrap();
    assert_eq!((run.name.as_str(), run.inputs), ("from the patch", Some(json!({"late": true}))));

    // A patch of an unknown run where patches may not create.
    let unknown = RunId::new_v7();
    let refused = store.ingest(patches(vec![RunWrite { id: Some(unknown), ..RunWrite::default() }], false)).await;
    assert!(matches!(refused, Err(StoreError::RunNotFound(id)) if id == unknown), "{refused:?}");
    assert!(store.get_run(unknown).await.unwrap().is_none());
}

/// One ingest is one transaction: a batch with a bad write stores none of it.
pub async fn a_failed_ingest_stores_nothing(h: &dyn Harness) {
    let store = fresh(h).await;
    let good = finished_run("p", 5);
    let good_id = good.id.unwrap();
    let before = store.change_seq().await.unwrap();
    let batch = IngestBatch {
        posts: vec![good],
        patches: vec![RunWrite { id: Some(RunId::new_v7()), ..RunWrite::default() }],
        patch_creates: false,
        ..IngestBatch::default()
    };
    assert!(store.ingest(batch).await.is_err());
    assert!(store.get_run(good_id).await.unwrap().is_none());
    assert!(store.change_seq().await.unwrap() >= before, "the horizon never moves back");
    // A run without a name is invalid, and so is its whole batch.
    let nameless = RunWrite { name: None, ..finished_run("p", 5) };
    let other = finished_run("p", 5);
    let other_id = other.id.unwrap();
    let refused = store.ingest(IngestBatch { posts: vec![other, nameless], ..IngestBatch::default() }).await;
    assert!(matches!(refused, Err(StoreError::InvalidRun(_))), "{refused:?}");
    assert!(store.get_run(other_id).await.unwrap().is_none());
}

/// A retried batch changes nothing: no run, no feedback, no sequence value.
pub async fn ingest_is_idempotent(h: &dyn Harness) {
    let store = fresh(h).await;
    let run = finished_run("p", 5);
    let id = run.id.unwrap();
    let fb = feedback(id, "correct");
    let batch = || IngestBatch { posts: vec![run.clone()], feedback: vec![fb.clone()], ..IngestBatch::default() };
    let first = store.ingest(batch()).await.unwrap();
    assert_eq!((first.created, first.feedback), (1, 1));
    let seq = store.get_run(id).await.unwrap().unwrap().seq;
    let again = store.ingest(batch()).await.unwrap();
    assert_eq!(again, IngestSummary { unchanged: 1, ..IngestSummary::default() });
    assert_eq!(store.get_run(id).await.unwrap().unwrap().seq, seq);
    assert_eq!(store.feedback_for_runs(&[id]).await.unwrap().len(), 1);
}

/// Runs go to the project they name: by id (it must exist), by name
/// (created on first use, once per batch), or the default one.
pub async fn projects_resolve_by_name_or_id(h: &dyn Harness) {
    let store = fresh(h).await;
    let (a, b) = (finished_run("named", 5), finished_run("named", 4));
    let ids = post(store.as_ref(), vec![a, b]).await;
    let ra = store.get_run(ids[0]).await.unwrap().unwrap();
    let rb = store.get_run(ids[1]).await.unwrap().unwrap();
    assert_eq!(ra.session_id, rb.session_id);
    let query = SessionQuery { name: Some("named".into()), limit: 10, ..Default::default() };
    assert_eq!(store.list_sessions(&query).await.unwrap().iter().map(|s| s.id).collect::<Vec<_>>(), [ra.session_id]);

    let no_project = RunWrite { session_name: None, ..finished_run("", 5) };
    let id = post(store.as_ref(), vec![no_project]).await[0];
    let project = store.get_run(id).await.unwrap().unwrap().session_id;
    assert_eq!(store.get_session(project).await.unwrap().unwrap().name, crate::DEFAULT_PROJECT);

    let unknown = SessionId::new_v4();
    let run = RunWrite { session_id: Some(unknown), session_name: None, ..finished_run("", 5) };
    let refused = store.ingest(IngestBatch { posts: vec![run], ..IngestBatch::default() }).await;
    assert!(matches!(refused, Err(StoreError::SessionNotFound(_))), "{refused:?}");

    let made = Session {
        id: SessionId::new_v4(),
        name: "made".into(),
        description: None,
        extra: None,
        start_time: Timestamp::now(),
    };
    store.create_session(made.clone()).await.unwrap();
    let by_id = RunWrite { session_id: Some(made.id), session_name: None, ..finished_run("", 5) };
    let id = post(store.as_ref(), vec![by_id]).await[0];
    assert_eq!(store.get_run(id).await.unwrap().unwrap().session_id, made.id);
    let twice = store.create_session(Session { id: SessionId::new_v4(), ..made }).await;
    assert!(matches!(twice, Err(StoreError::Conflict(_))), "{twice:?}");
}

/// New feedback moves its run's change sequence (a rule sees the run
/// again); the same feedback again moves nothing and returns the stored one.
pub async fn new_feedback_moves_the_change_sequence_once(h: &dyn Harness) {
    let store = fresh(h).await;
    let id = post(store.as_ref(), vec![finished_run("p", 5)]).await[0];
    let before = store.get_run(id).await.unwrap().unwrap().seq;
    let fb = feedback(id, "helpful");
    let stored = store.create_feedback(fb.clone()).await.unwrap();
    assert_eq!((stored.id, stored.key.as_str()), (fb.id, "helpful"));
    let after = store.get_run(id).await.unwrap().unwrap().seq;
    assert!(after > before, "{after} is not after {before}");
    horizon_past(store.as_ref(), &[id]).await;
    let again = store.create_feedback(Feedback { key: "changed".into(), ..fb.clone() }).await.unwrap();
    assert_eq!(again.key, "helpful");
    assert_eq!(store.get_run(id).await.unwrap().unwrap().seq, after);
    assert_eq!(store.get_feedback(fb.id).await.unwrap().map(|f| f.id), Some(fb.id));

    let missing = RunId::new_v7();
    let refused = store.create_feedback(feedback(missing, "x")).await;
    assert!(matches!(refused, Err(StoreError::RunNotFound(r)) if r == missing), "{refused:?}");
}

/// Each write that changes a run takes a value after every earlier one,
/// and the store's horizon covers them all.
pub async fn every_change_takes_a_later_sequence_value(h: &dyn Harness) {
    let store = fresh(h).await;
    let start = store.change_seq().await.unwrap();
    let a = post(store.as_ref(), vec![finished_run("p", 5)]).await[0];
    let b = post(store.as_ref(), vec![finished_run("p", 5)]).await[0];
    let seq = |id| {
        let store = store.clone();
        async move { store.get_run(id).await.unwrap().unwrap().seq }
    };
    let (sa, sb) = (seq(a).await, seq(b).await);
    assert!(start < sa && sa < sb, "{start} {sa} {sb}");
    horizon_past(store.as_ref(), &[a, b]).await;
    let patch = RunWrite { id: Some(a), error: Some("late error".into()), ..RunWrite::default() };
    store.ingest(patches(vec![patch], false)).await.unwrap();
    let sa2 = seq(a).await;
    assert!(sa2 > sb, "the patched run did not move past the later one: {sa2} {sb}");
    assert_eq!(seq(b).await, sb);
    horizon_past(store.as_ref(), &[a, b]).await;
}

/// Listings page newest first without gaps or repeats; trace reads find
/// every run of a trace.
pub async fn reads_page_newest_first_and_follow_traces(h: &dyn Harness) {
    let store = fresh(h).await;
    let root = finished_run("p", 10);
    let root_id = root.id.unwrap();
    let child = finished_run("p", 9);
    let child_id = child.id.unwrap();
    let segment = runhook_core::model::run::dotted_segment;
    let child = RunWrite {
        parent_run_id: Some(root_id),
        trace_id: Some(root_id),
        dotted_order: Some(format!(
            "{}.{}",
            segment(root.start_time.unwrap(), root_id),
            segment(child.start_time.unwrap(), child_id)
        )),
        run_type: Some(RunType::Tool),
        ..child
    };
    let others: Vec<RunWrite> = (0..5).map(|i| finished_run("p", 8 - i)).collect();
    post(store.as_ref(), vec![root, child]).await;
    post(store.as_ref(), others).await;

    let mut seen = Vec::new();
    let mut query = RunQuery { limit: 2, ..RunQuery::default() };
    loop {
        let (page, next) = store.query_runs(&query).await.unwrap();
        seen.extend(page.iter().map(|r| (r.start_time, r.id)));
        match next {
            Some(cursor) => query.cursor = Some(cursor),
            None => break,
        }
    }
    assert_eq!(seen.len(), 7);
    assert!(seen.windows(2).all(|w| w[0] > w[1]), "not newest first: {seen:?}");
    // A byte budget ends each page after its first run; the cursor goes on.
    let mut paged = Vec::new();
    let mut query = RunQuery { limit: 100, max_bytes: Some(1), ..RunQuery::default() };
    loop {
        let (page, next) = store.query_runs(&query).await.unwrap();
        assert_eq!(page.len(), 1, "a page over its budget still has one run, and only one");
        paged.extend(page.iter().map(|r| (r.start_time, r.id)));
        match next {
            Some(cursor) => query.cursor = Some(cursor),
            None => break,
        }
    }
    assert_eq!(paged, seen);

    let trace = store.runs_in_traces(&[root_id]).await.unwrap();
    let mut ids: Vec<RunId> = trace.iter().map(|r| r.id).collect();
    ids.sort();
    let mut expected = vec![root_id, child_id];
    expected.sort();
    assert_eq!(ids, expected);
    let nodes = store.trace_nodes(&[root_id]).await.unwrap();
    let child_node = nodes.iter().find(|n| n.id == child_id).unwrap();
    assert_eq!(child_node.parent_run_id, Some(root_id));
    let by_id = store.runs_by_ids(&[child_id, RunId::new_v7()]).await.unwrap();
    assert_eq!(by_id.iter().map(|r| r.id).collect::<Vec<_>>(), [child_id]);
    let roots = RunQuery { is_root: Some(true), ids: vec![], limit: 100, ..RunQuery::default() };
    assert!(store.query_runs(&roots).await.unwrap().0.iter().all(|r| r.parent_run_id.is_none()));

    // A lean read leaves the large fields out and everything else in.
    let full = RunQuery { ids: vec![root_id], limit: 1, ..RunQuery::default() };
    let full = store.query_runs(&full).await.unwrap().0.remove(0);
    assert!(full.inputs.is_some());
    let lean = RunQuery { ids: vec![root_id], limit: 1, lean: true, ..RunQuery::default() };
    let lean = store.query_runs(&lean).await.unwrap().0.remove(0);
    assert_eq!(RunRecord { inputs: None, outputs: None, events: None, serialized: None, ..full }, lean);
}

/// Attachments are kept per run and name; a second upload replaces the first.
pub async fn attachments_replace_same_named_ones(h: &dyn Harness) {
    let store = fresh(h).await;
    let run = finished_run("p", 5);
    let id = run.id.unwrap();
    let attach = |data: &'static [u8], mime: &str| Attachment {
        run_id: id,
        name: "prompt".into(),
        mime: mime.into(),
        data: Bytes::from_static(data),
    };
    let batch =
        IngestBatch { posts: vec![run], attachments: vec![attach(b"one", "text/plain")], ..IngestBatch::default() };
    store.ingest(batch).await.unwrap();
    let again = IngestBatch { attachments: vec![attach(b"{}", "application/json")], ..IngestBatch::default() };
    store.ingest(again).await.unwrap();
    let got = store.get_attachment(id, "prompt").await.unwrap().unwrap();
    assert_eq!((got.0.as_str(), got.1.as_ref()), ("application/json", b"{}".as_slice()));
    assert_eq!(store.list_attachments(id).await.unwrap(), [("prompt".to_string(), "application/json".to_string())]);
    assert!(store.get_attachment(id, "other").await.unwrap().is_none());
}
