//! runhook's store contract: every read and write the service makes, by
//! concern, with the records each one takes and returns, the decisions no
//! backend should make on its own, and a neutral error.
//!
//! | concern | trait | module |
//! |---|---|---|
//! | runs, feedback, projects, attachments | [`RunStore`] | [`runs`], [`ingest`] |
//! | rules, their progress and cycles | [`RuleStore`] | [`rules`] |
//! | webhook deliveries | [`OutboxStore`] | [`outbox`], [`sealed`] |
//! | secrets at rest | [`SecretStore`] | [`secrets`] |
//! | uploaded plugins | [`PluginStore`] | [`plugins`] |
//! | datasets and examples | [`DatasetStore`] | [`datasets`] |
//! | annotation queues | [`QueueStore`] | [`queues`] |
//! | which replica runs what | [`LeaseStore`] | [`leases`] |
//! | moving to another backend | [`transfer::Export`], [`transfer::Import`] | [`transfer`] |
//!
//! [`Store`] is their sum: what the API holds (`Arc<dyn Store>`). Callers
//! take the narrowest one they use: the delivery worker an `OutboxStore`,
//! the filter selection a `RunStore`. A backend is a crate of its own
//! (`runhook-store-sqlite`) that implements each trait in its own file; the
//! `conformance` feature carries the tests every backend must pass.
//!
//! Decided here once, so a backend implements only the statements: the
//! ingest merge of posts and patches ([`ingest::apply`] over an
//! [`ingest::IngestTx`]); the composition of a cycle's commit
//! ([`rules::commit_cycle`] over a [`rules::CycleTx`]); where a redelivery
//! goes ([`outbox::redelivery_target`]); which writes move the change
//! sequence (below); how a rule's secrets are sealed ([`secrets`]).
//!
//! # What every backend keeps
//!
//! - **One transaction per call.** A call that fails changes nothing: a
//!   rejected ingest stores no run of its batch, a cycle whose watermark
//!   moved stores no log line, outbox row or feedback.
//! - **The change sequence.** Every write that changes a run (a post or
//!   patch that changed it, new feedback on it) stamps the run with a new
//!   [`ChangeSeq`]; a write that changes nothing stamps nothing. Values
//!   become visible in commit order: [`RuleStore::change_seq`] never
//!   returns a position at or above which a write still running will
//!   stamp, so a rule that reads up to it and moves its watermark there
//!   never skips a run. (One writer makes a counter do; with concurrent
//!   writers the position must carry the transaction's order.)
//! - **A cycle commits whole.** A rule's watermark, its log lines, its
//!   outbox rows, the evaluator's feedback (with its change-sequence
//!   stamps) and the cycle's summary commit together, and only if the
//!   watermark is where the cycle started ([`rules::commit_cycle`]).
//! - **At-least-once delivery.** A delivery stays `pending` until an
//!   attempt's record finishes it; a crash leaves it due, and it is sent
//!   again with the same id. The bell ([`OutboxBell`]) rings after a commit
//!   that makes deliveries due now, in this process only.
//! - **A claimed delivery** ([`Claim`]) is one worker's for one attempt:
//!   no due read returns it while the claim is live, a record is kept only
//!   with its token, and an expired claim is an interrupted attempt that
//!   the next claim records (decided once, in [`claim::claim_step`]).
//! - **Leases are fenced.** A cycle committed under a lease commits only
//!   while the rule is held under that lease's epoch ([`leases`]).
//! - **Secrets sealed at rest.** URLs, header values and signing secrets
//!   are sealed before they are written and opened when read; records
//!   above the store hold them in clear.

pub mod alerts;
pub mod claim;
#[cfg(feature = "conformance")]
pub mod conformance;
pub mod datasets;
mod error;
pub mod ingest;
pub mod leases;
pub mod outbox;
pub mod plugins;
pub mod queues;
pub mod rules;
pub mod runs;
pub mod sealed;
pub mod secrets;
pub mod transfer;

pub use alerts::{Alert, AlertStore};
pub use claim::{Claim, ClaimOutcome, ClaimTerms, ClaimToken};
pub use datasets::{DatasetQuery, DatasetStore, ExampleChanges, ExampleQuery};
pub use error::{BoxError, StoreError};
pub use leases::{Lease, LeaseStore};
pub use outbox::{
    AttemptRecord, Delivery, DeliveryQuery, DeliveryRecord, DeliveryStatus, DueCursor, DuePage, DueQuery, Finished,
    OutboxBell, OutboxRow, OutboxStore, Redelivery, endpoint_key,
};
pub use plugins::{PluginRemoval, PluginStore, PluginUpload, StoredPlugin};
pub use queues::{AnnotationQueue, QueueEntry, QueueQuery, QueueStore};
pub use rules::{
    Announcement, CycleCommit, CycleSummary, DueThreads, PendingThread, RuleLogCursor, RuleRunLog, RuleState,
    RuleStats, RuleStore, ThreadRun,
};
pub use runhook_core::model::ChangeSeq;
pub use runs::{
    Attachment, DEFAULT_PROJECT, FeedbackQuery, IngestBatch, IngestSummary, RunCursor, RunQuery, RunStore,
    SessionQuery, TreeNode,
};
pub use secrets::SecretStore;

use runhook_core::model::{Feedback, RunId, Timestamp};

/// Every read and write the service makes: the sum of the concerns.
pub trait Store:
    RunStore + RuleStore + OutboxStore + SecretStore + LeaseStore + PluginStore + DatasetStore + QueueStore + AlertStore
{
}

impl<
    T: RunStore
        + RuleStore
        + OutboxStore
        + SecretStore
        + LeaseStore
        + PluginStore
        + DatasetStore
        + QueueStore
        + AlertStore
        + ?Sized,
> Store for T
{
}

/// The statements that change a run's change sequence, shared by an
/// ingest's and a cycle's transaction.
#[allow(async_fn_in_trait)] // used generically inside one crate's backend, never as `dyn`
pub trait ChangeTx {
    /// Inserts feedback unless its id exists; whether it was new.
    async fn insert_feedback(&mut self, feedback: &Feedback) -> Result<bool, StoreError>;
    /// Stamps run `run` with a new change sequence value (it changed at `now`).
    async fn touch_run(&mut self, run: RunId, now: Timestamp) -> Result<(), StoreError>;
}

/// Adds feedback through `tx`: new feedback moves its run's change
/// sequence (a rule then sees the run again), a known id changes nothing.
/// Whether it was new.
pub async fn add_feedback(tx: &mut impl ChangeTx, feedback: &Feedback, now: Timestamp) -> Result<bool, StoreError> {
    if !tx.insert_feedback(feedback).await? {
        return Ok(false);
    }
    if let Some(run) = feedback.run_id {
        tx.touch_run(run, now).await?;
    }
    Ok(true)
}
