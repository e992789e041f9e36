//! The store's behaviour as tests every backend runs: the contract in
//! `runhook_store`'s crate doc, checked through the traits alone
//! (`Arc<dyn Store>`), never through a backend's own tables.
//!
//! A backend's test crate implements [`Harness`] (how to open its store,
//! fresh for each test) and expands [`conformance_suite!`] once:
//!
//! ```text
//! runhook_store::conformance_suite!(MyHarness::new());
//! ```
//!
//! Each case is a plain `async fn(&dyn Harness)` in one of the modules
//! below, by concern; the macro makes one `#[tokio::test]` of each, so a
//! failure names the case. A case asserts (and panics) like any test.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

pub mod alerts;
pub mod datasets;
pub mod leases;
pub mod outbox;
pub mod plugins;
pub mod queues;
pub mod rules;
pub mod runs;
pub mod secrets;
pub mod threads;

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::json;

use runhook_core::model::{
    ChangeSeq, DeliveryId, Rule, RuleId, RuleSpec, RunId, RunType, RunWrite, SessionId, Timestamp, WebhookTarget,
};
use runhook_core::secrets::Keyring;

use crate::{
    AttemptRecord, ClaimOutcome, ClaimTerms, ClaimToken, CycleCommit, DeliveryRecord, DeliveryStatus, IngestBatch,
    OutboxRow, Store, StoreError,
};

/// How a backend's tests open its store.
#[async_trait]
pub trait Harness: Send + Sync {
    /// Opens the store under test, sealing secrets with `keys`. Every call
    /// on one harness opens the same database (a test may close and open
    /// it again, with other keys); each harness has a database of its own,
    /// empty at first.
    async fn open(&self, keys: &Keyring) -> Arc<dyn Store>;
}

/// Expands to one `#[tokio::test]` per conformance case, each on a fresh
/// harness made by the expression given; `conformance_suite!(if ready; harness)`
/// runs them only when `ready` is true (and prints that they were skipped).
#[macro_export]
macro_rules! conformance_suite {
    // Each case runs only when `$ready` holds, and says so on stderr when
    // it does not (a backend whose database a machine may lack).
    (if $ready:expr; $harness:expr) => {
        $crate::conformance_suite!(@cases $ready; $harness;
            runs::ingest_merges_posts_and_patches_in_any_order,
            runs::a_failed_ingest_stores_nothing,
            runs::ingest_is_idempotent,
            runs::projects_resolve_by_name_or_id,
            runs::new_feedback_moves_the_change_sequence_once,
            runs::every_change_takes_a_later_sequence_value,
            runs::reads_page_newest_first_and_follow_traces,
            runs::attachments_replace_same_named_ones,
            rules::rules_are_created_updated_and_deleted_keeping_their_progress,
            rules::a_cycle_reads_its_window_of_finished_runs,
            rules::a_backfilling_rule_sees_runs_from_before_it,
            rules::a_cycle_commits_whole,
            rules::a_cycle_whose_watermark_moved_commits_nothing,
            rules::deleting_a_rule_drops_its_pending_deliveries,
            rules::rule_log_pages_continue_after_their_cursor,
            rules::a_cycle_adds_its_examples_once,
            rules::old_cycle_summaries_are_pruned_but_each_rules_newest,
            outbox::attempts_are_recorded_until_a_delivery_finishes,
            outbox::a_claimed_delivery_is_one_workers_until_its_record,
            outbox::an_expired_claim_is_an_interrupted_attempt,
            outbox::a_mixed_group_is_recorded_whole,
            outbox::due_pages_continue_after_their_cursor_and_skip_busy_endpoints,
            outbox::a_redelivery_keeps_the_id_and_the_history,
            outbox::redeliveries_stop_at_the_attempt_cap,
            outbox::a_bulk_redelivery_queues_the_finished_deliveries_it_selects,
            outbox::a_redelivery_goes_to_its_webhook_as_the_rule_has_it_now,
            outbox::a_redelivery_follows_its_webhook_by_id,
            outbox::a_redelivery_is_signed_with_the_rules_current_secrets,
            outbox::pruning_removes_only_deliveries_queued_and_finished_before_the_cutoff,
            secrets::secrets_read_back_in_clear,
            secrets::secrets_are_resealed_under_the_current_key,
            leases::rules_are_spread_over_the_live_replicas,
            leases::an_expired_lease_is_taken_over_and_fences_its_former_owner,
            leases::a_singleton_has_one_holder,
            plugins::uploads_are_content_addressed_and_kept_while_used,
            plugins::a_rule_cannot_name_a_plugin_not_stored,
            plugins::a_plugin_deleted_while_a_rule_is_saved_is_never_left_missing,
            datasets::datasets_and_examples_are_kept_listed_and_changed,
            queues::queues_hold_runs_once_in_order_until_reviewed,
            threads::held_runs_wait_until_their_thread_is_idle,
            alerts::alerts_commit_each_evaluation_once,
        );
    };
    ($harness:expr) => {
        $crate::conformance_suite!(if true; $harness);
    };
    (@cases $ready:expr; $harness:expr; $($module:ident :: $case:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                if !$ready {
                    eprintln!("skipped: {}", stringify!($ready));
                    return;
                }
                let harness = $harness;
                $crate::conformance::$module::$case(&harness).await;
            }
        )*
    };
}

/// A store of its own, with a fresh keyring.
pub async fn fresh(h: &dyn Harness) -> Arc<dyn Store> {
    h.open(&Keyring::generate()).await
}

/// Minutes ago (negative: from now).
pub fn ago(minutes: i64) -> Timestamp {
    Timestamp::from_datetime(chrono::Utc::now() - chrono::Duration::minutes(minutes))
}

/// A finished root run posted to project `project`, started `minutes` ago.
pub fn finished_run(project: &str, minutes: i64) -> RunWrite {
    let id = RunId::new_v7();
    RunWrite {
        id: Some(id),
        name: Some("ChatOpenAI".into()),
        run_type: Some(RunType::Llm),
        start_time: Some(ago(minutes)),
        end_time: Some(ago(minutes - 1)),
        inputs: Some(json!({"question": "why?"})),
        session_name: Some(project.into()),
        ..RunWrite::default()
    }
}

/// Ingests `posts` in one batch; returns their ids.
pub async fn post(store: &dyn Store, posts: Vec<RunWrite>) -> Vec<RunId> {
    let ids = posts.iter().filter_map(|w| w.id).collect();
    store.ingest(IngestBatch { posts, ..IngestBatch::default() }).await.unwrap();
    ids
}

/// A rule on project `project` delivering to `webhooks`.
pub async fn rule(store: &dyn Store, project: SessionId, webhooks: Vec<WebhookTarget>) -> Rule {
    store.create_rule(RuleId::new_v4(), &RuleSpec::new("conformance", project, webhooks)).await.unwrap()
}

/// A webhook target.
pub fn hook(url: &str) -> WebhookTarget {
    WebhookTarget::new(url)
}

/// A delivery of `rule` to a fixed target, as a cycle queues it.
pub fn fresh_row(rule: RuleId) -> OutboxRow {
    OutboxRow::queued(rule, &hook("https://hooks.example.com/x?token=t0k3n"), "{}".into(), vec![])
}

/// Queues `rows` (all of `rule`) as a cycle does: one commit that leaves
/// the watermark where it is.
pub async fn queue(store: &dyn Store, rule: RuleId, rows: &[OutboxRow]) {
    commit_in_place(store, rule, rows, None).await.unwrap();
}

/// Commits a cycle of `rule` that leaves its watermark where it is and
/// queues `rows`, under `lease` when given.
pub async fn commit_in_place(
    store: &dyn Store,
    rule: RuleId,
    rows: &[OutboxRow],
    lease: Option<crate::Lease>,
) -> Result<(), StoreError> {
    let state = store.rule_state(rule).await.unwrap().expect("the rule exists");
    store
        .commit_cycle(CycleCommit {
            outbox: rows.to_vec(),
            lease,
            ..CycleCommit::new(rule, state.watermark, state.watermark, state.window_end, Timestamp::now())
        })
        .await
}

/// The record of a successful attempt `attempts` of `row`.
pub fn delivered(row: &OutboxRow, attempts: u32) -> DeliveryRecord {
    DeliveryRecord {
        id: row.id,
        claim: ClaimToken::new(),
        rule_id: row.rule_id,
        run_ids: row.run_ids.clone(),
        attempts,
        attempt: AttemptRecord {
            attempt: attempts,
            started_at: Timestamp::now(),
            duration_ms: 4,
            class: "success".into(),
            status_code: Some(200),
            error: None,
        },
        status: DeliveryStatus::Delivered,
    }
}

/// The record of attempt `attempts` of `row`, after which the policy gave up.
pub fn failed(row: &OutboxRow, attempts: u32, error: &str) -> DeliveryRecord {
    DeliveryRecord {
        status: DeliveryStatus::Failed(error.into()),
        attempt: AttemptRecord {
            class: "server_error".into(),
            status_code: Some(500),
            error: Some(error.into()),
            ..delivered(row, attempts).attempt
        },
        ..delivered(row, attempts)
    }
}

/// Records `records` as a worker does: each under a claim of its own,
/// taken first (a week ahead, by when every delivery a case queues or
/// retries is due).
pub async fn record(store: &dyn Store, records: &[DeliveryRecord]) -> Result<Vec<DeliveryId>, StoreError> {
    let ids: Vec<DeliveryId> = records.iter().map(|r| r.id).collect();
    let later = Timestamp::from_datetime(chrono::Utc::now() + chrono::Duration::days(7));
    let terms =
        ClaimTerms { now: later, lease: std::time::Duration::from_secs(60), give_up_after: 100, per_endpoint: 1000 };
    let outcomes = store.claim_deliveries(&ids, &terms).await?;
    let mut claimed = records.to_vec();
    for (record, outcome) in claimed.iter_mut().zip(outcomes) {
        match outcome {
            ClaimOutcome::Claimed { claim, .. } => record.claim = claim.token,
            other => panic!("delivery {} could not be claimed: {other:?}", record.id),
        }
    }
    store.record_deliveries(&claimed).await
}

/// The store's horizon once it covers every change to `runs` so far. A
/// store with concurrent writers keeps its horizon below transactions
/// still open anywhere on its server (Postgres: other tests' too), so the
/// horizon passes a committed write soon after it, not always at once.
pub async fn horizon_past(store: &dyn Store, runs: &[RunId]) -> ChangeSeq {
    let mut last = ChangeSeq::START;
    for id in runs {
        last = last.max(store.get_run(*id).await.unwrap().expect("the run is stored").seq);
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let horizon = store.change_seq().await.unwrap();
        if horizon >= last {
            return horizon;
        }
        assert!(std::time::Instant::now() < deadline, "the horizon stayed below {last} for 30 s");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// Whether the store's bell rang since last asked (and forgets it).
pub fn rang(store: &dyn Store) -> bool {
    use futures_util::FutureExt;
    let mut rang = false;
    while store.outbox_bell().rung().now_or_never().is_some() {
        rang = true;
    }
    rang
}
