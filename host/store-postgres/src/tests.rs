//! The store contract's conformance suite on Postgres, and what only
//! concurrent writers can break: the change sequence's commit order and
//! two replicas merging one run.
//!
//! Each harness makes a database of its own on the server named by
//! `RUNHOOK_TEST_DATABASE_URL` (`tests/run.sh` starts one and sets it);
//! without it, the cases say they were skipped.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use sqlx::Connection;
use tokio::sync::OnceCell;

use runhook_core::model::{RunWrite, Timestamp};
use runhook_core::secrets::Keyring;
use runhook_store::conformance::{finished_run, horizon_past, rule};
use runhook_store::{IngestBatch, RuleStore, RunStore, Store, ingest};

use super::PgStore;
use crate::tx::Tx;

/// The server the tests make their databases on, if one is given.
fn server() -> Option<String> {
    std::env::var("RUNHOOK_TEST_DATABASE_URL").ok().filter(|u| !u.is_empty())
}

/// A database of its own on the test server, made on first use.
#[derive(Default)]
struct Postgres(OnceCell<String>);

impl Postgres {
    async fn url(&self) -> &str {
        self.0.get_or_init(fresh_database).await
    }
}

/// Creates an empty database on the test server; its URL.
async fn fresh_database() -> String {
    let server = server().expect("RUNHOOK_TEST_DATABASE_URL names a Postgres server");
    let name = format!("runhook_{}", uuid::Uuid::new_v4().simple());
    let mut admin = sqlx::PgConnection::connect(&server).await.expect("the test server answers");
    sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut admin).await.unwrap();
    let mut url = url::Url::parse(&server).expect("RUNHOOK_TEST_DATABASE_URL is a URL");
    url.set_path(&name);
    url.to_string()
}

#[async_trait::async_trait]
impl runhook_store::conformance::Harness for Postgres {
    async fn open(&self, keys: &Keyring) -> Arc<dyn Store> {
        Arc::new(PgStore::open(self.url().await, keys.clone()).await.expect("the store opens"))
    }
}

runhook_store::conformance_suite!(if server().is_some(); Postgres::default());

async fn store() -> Option<PgStore> {
    if server().is_none() {
        eprintln!("skipped: RUNHOOK_TEST_DATABASE_URL is not set");
        return None;
    }
    Some(PgStore::open(&fresh_database().await, Keyring::generate()).await.unwrap())
}

/// Reproduces the race of sequence values handed out in call order:
/// transaction A stamps its run first but commits last, B stamps later and
/// commits first. A rule that read B and moved its watermark past it would
/// never see A's run; reading below the horizon, the rule sees nothing
/// until A commits, then both.
#[tokio::test]
async fn a_run_committed_late_with_an_early_sequence_value_is_not_skipped() {
    let Some(store) = store().await else { return };
    let project = store.ingest(batch(vec![finished_run("race", 5)])).await.unwrap();
    assert_eq!(project.created, 1);
    let session = store.list_sessions(&Default::default()).await.unwrap();
    let session = session.iter().find(|s| s.name == "race").unwrap().id;
    let first = store.query_runs(&Default::default()).await.unwrap().0;
    horizon_past(&store, &[first[0].id]).await;
    let rule = rule(&store, session, vec![]).await;
    let start = store.rule_state(rule.id).await.unwrap().unwrap().watermark;

    // A takes its stamps and stays open.
    let a_run = finished_run("race", 4);
    let a_id = a_run.id.unwrap();
    let mut a = Tx::begin(&store).await.unwrap();
    ingest::apply(&mut a, batch(vec![a_run]), Timestamp::now()).await.unwrap();
    // B stamps after A and commits first.
    let b_run = finished_run("race", 3);
    let b_id = b_run.id.unwrap();
    store.ingest(batch(vec![b_run])).await.unwrap();

    let b_stored = store.get_run(b_id).await.unwrap().unwrap();
    let upto = store.change_seq().await.unwrap();
    let seen = store.window_runs(rule.spec.session_id, start, upto, 100).await.unwrap();
    assert!(seen.is_empty(), "nothing is read while A, stamped earlier, is open: {seen:?}");
    assert!(upto < b_stored.seq, "the horizon stays below B while A is open");
    assert!(store.horizon_lag().await.unwrap() > std::time::Duration::ZERO, "the lag counts A's age");

    a.commit().await.unwrap();
    let a_stored = store.get_run(a_id).await.unwrap().unwrap();
    assert!(a_stored.seq.parts().1 < b_stored.seq.parts().1, "A took the lower sequence value: the race happened");
    let upto = horizon_past(&store, &[a_id, b_id]).await;
    let seen: Vec<_> =
        store.window_runs(rule.spec.session_id, start, upto, 100).await.unwrap().iter().map(|r| r.id).collect();
    assert_eq!(seen, vec![a_id, b_id], "both runs, in commit order of their transactions");
}

/// Two replicas writing one new run at once (a post with its inputs, a
/// patch with its outputs): whichever creates it, the other merges into
/// it, and no field is lost.
#[tokio::test]
async fn concurrent_merges_of_one_run_lose_nothing() {
    let Some(store) = store().await else { return };
    for _ in 0..20 {
        let post = finished_run("merge", 5);
        let id = post.id;
        let patch = RunWrite { inputs: None, outputs: Some(serde_json::json!({"answer": 42})), ..post.clone() };
        let write = |w: RunWrite, patches: bool| {
            if patches {
                IngestBatch { patches: vec![w], patch_creates: true, ..IngestBatch::default() }
            } else {
                batch(vec![w])
            }
        };
        let (s1, s2) = (store.clone(), store.clone());
        let (p, q) = tokio::join!(
            tokio::spawn(async move { s1.ingest(write(post, false)).await }),
            tokio::spawn(async move { s2.ingest(write(patch, true)).await }),
        );
        p.unwrap().unwrap();
        q.unwrap().unwrap();
        let run = store.get_run(id.unwrap()).await.unwrap().unwrap();
        assert!(run.inputs.is_some(), "the post's fields are kept");
        assert_eq!(run.outputs, Some(serde_json::json!({"answer": 42})), "the patch's fields are kept");
    }
}

/// Claims for one endpoint stop at its bound, whichever worker asks; a
/// record frees a place.
#[tokio::test]
async fn claims_for_one_endpoint_stop_at_its_bound_across_workers() {
    use runhook_store::conformance::{delivered, fresh_row, queue};
    use runhook_store::{ClaimOutcome, ClaimTerms, OutboxStore};
    let Some(store) = store().await else { return };
    let rule = rule(&store, runhook_core::model::SessionId::new_v4(), vec![]).await;
    let rows: Vec<_> = (0..3).map(|_| fresh_row(rule.id)).collect();
    queue(&store, rule.id, &rows).await;
    let terms = ClaimTerms {
        now: Timestamp::now(),
        lease: std::time::Duration::from_secs(60),
        give_up_after: 3,
        per_endpoint: 2,
    };
    let ids: Vec<_> = rows.iter().map(|r| r.id).collect();
    let first = store.claim_deliveries(&ids[..2], &terms).await.unwrap();
    assert!(first.iter().all(|o| matches!(o, ClaimOutcome::Claimed { .. })), "{first:?}");
    // Another replica's worker finds the endpoint full.
    let other = PgStore::open(&current_url(&store).await, store.keys.clone()).await.unwrap();
    assert_eq!(other.claim_deliveries(&ids[2..], &terms).await.unwrap(), vec![ClaimOutcome::Busy]);
    let ClaimOutcome::Claimed { claim, .. } = &first[0] else { unreachable!() };
    let record = runhook_store::DeliveryRecord { claim: claim.token, ..delivered(&rows[0], 1) };
    assert!(store.record_deliveries(&[record]).await.unwrap().is_empty());
    assert!(matches!(other.claim_deliveries(&ids[2..], &terms).await.unwrap()[..], [ClaimOutcome::Claimed { .. }]));
}

/// A trigger, a rule change and queued deliveries announced through one
/// replica's store ring the other's signals and bell.
#[tokio::test]
async fn wake_ups_cross_replicas() {
    use runhook_store::conformance::{fresh_row, queue};
    use runhook_store::{Announcement, OutboxStore};
    let Some(a) = store().await else { return };
    let b = PgStore::open(&current_url(&a).await, a.keys.clone()).await.unwrap();
    let rule = rule(&a, runhook_core::model::SessionId::new_v4(), vec![]).await;
    let within = std::time::Duration::from_secs(30);
    // The listener rings once when it connects; start from quiet.
    tokio::time::timeout(within, b.outbox_bell().rung()).await.unwrap();
    tokio::time::timeout(within, b.rule_signals().changed()).await.unwrap();

    let trigger = b.rule_signals().trigger_handle(rule.id);
    a.announce(Announcement::Trigger(rule.id)).await.unwrap();
    tokio::time::timeout(within, trigger.notified()).await.expect("b hears a's trigger");
    a.announce(Announcement::RulesChanged).await.unwrap();
    tokio::time::timeout(within, b.rule_signals().changed()).await.expect("b hears a's rule change");
    queue(&a, rule.id, &[fresh_row(rule.id)]).await;
    tokio::time::timeout(within, b.outbox_bell().rung()).await.expect("b's worker hears a's deliveries");
}

/// Text Postgres cannot hold is refused as the caller's mistake, naming
/// the field where it can, and nothing of the batch is stored.
#[tokio::test]
async fn text_with_a_nul_is_refused_not_a_server_error() {
    use runhook_store::StoreError;
    let Some(store) = store().await else { return };
    let run = RunWrite { name: Some("bad\0name".into()), ..finished_run("nul", 5) };
    let id = run.id.unwrap();
    let refused = store.ingest(batch(vec![run])).await.unwrap_err();
    assert!(matches!(&refused, StoreError::InvalidRun(e) if e.to_string().contains("\"name\"")), "{refused:?}");
    assert!(store.get_run(id).await.unwrap().is_none());
    let refused = store.ingest(batch(vec![finished_run("bad\0project", 5)])).await.unwrap_err();
    assert!(matches!(refused, StoreError::Unstorable(_)), "{refused:?}");
}

/// The URL of the database `store` is connected to.
async fn current_url(store: &PgStore) -> String {
    let name: String = sqlx::query_scalar("SELECT current_database()").fetch_one(&store.pool).await.unwrap();
    let mut url = url::Url::parse(&server().unwrap()).unwrap();
    url.set_path(&name);
    url.to_string()
}

fn batch(posts: Vec<RunWrite>) -> IngestBatch {
    IngestBatch { posts, ..IngestBatch::default() }
}
