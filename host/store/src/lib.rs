//! Persistence: every read and write the service makes, behind one trait.
//!
//! [`Store`] is what the API and the rule engine hold (`Arc<dyn Store>`).
//! [`sqlite::SqliteStore`] is the embedded default; a Postgres store will
//! implement the same trait and pass the same tests. Each method is one
//! transaction: a rejected ingest stores nothing.
//!
//! The **change sequence** is a store-wide counter bumped by every write that
//! changes a run (post, patch, new feedback). Each run carries the value of
//! its last change in `seq`; rules poll for runs whose `seq` moved past their
//! watermark, so a run that gains feedback is seen again.
//!
//! Layering: layer 1; imports `model` only.

pub mod outbox;
pub mod rules;
pub mod sealed;

use std::collections::HashSet;

pub use outbox::{
    AttemptRecord, Delivery, DeliveryQuery, DeliveryRecord, DeliveryStatus, DueCursor, DuePage, DueQuery, Finished,
    OutboxBell, OutboxRow, Redelivery, endpoint_key,
};
pub use rules::{CycleCommit, CycleSummary, RuleRunLog, RuleState};

use async_trait::async_trait;
use bytes::Bytes;
use uuid::Uuid;

use runhook_core::model::run::InvalidRun;
use runhook_core::model::{
    DeliveryId, Feedback, FeedbackId, Rule, RuleId, RuleSpec, RunId, RunRecord, RunType, RunWrite, Session, SessionId,
    TenantId, Timestamp,
};

/// The project runs go to when they name none (as LangSmith does).
pub const DEFAULT_PROJECT: &str = "default";

/// A backend's own error, boxed so that no driver type crosses the store's surface.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// An error from the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A run a write refers to does not exist.
    #[error("run {0} not found")]
    RunNotFound(RunId),
    /// A rule does not exist.
    #[error("rule {0} not found")]
    RuleNotFound(RuleId),
    /// A project a write or read refers to does not exist.
    #[error("project {0} not found")]
    SessionNotFound(String),
    /// The write would break an invariant (a duplicate name, an id reused).
    #[error("{0}")]
    Conflict(String),
    /// The write carries an invalid run.
    #[error(transparent)]
    InvalidRun(#[from] InvalidRun),
    /// The database is not reachable or cannot serve now (a pool timed
    /// out, a connection was lost); the call may succeed later.
    #[error("database unavailable: {0}")]
    Unavailable(#[source] BoxError),
    /// The database failed (a driver error, a failed migration, a panicked
    /// batch); the source says how.
    #[error("database error: {0}")]
    Backend(#[source] BoxError),
    /// The data directory cannot be used.
    #[error("data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A stored value could not be decoded (a corrupt or foreign database).
    #[error("corrupt stored value in {column}: {detail}")]
    Corrupt {
        /// Where.
        column: &'static str,
        /// What.
        detail: String,
    },
}

/// A raw attachment to a run (`attachment.{run_id}.{name}` parts).
#[derive(Debug, Clone)]
pub struct Attachment {
    /// The run.
    pub run_id: RunId,
    /// Its name (no dots).
    pub name: String,
    /// Its MIME type.
    pub mime: String,
    /// Its bytes.
    pub data: Bytes,
}

/// Everything one ingest request writes, applied in one transaction:
/// posts, then patches, then feedback, then attachments.
#[derive(Debug, Default)]
pub struct IngestBatch {
    /// Run posts (merged into existing runs: fill missing fields only).
    pub posts: Vec<RunWrite>,
    /// Run patches (overwrite the fields they carry). Each has an `id`.
    pub patches: Vec<RunWrite>,
    /// Whether a patch of an unknown run may create it (batch endpoints,
    /// where the SDK's senders can reorder) or is refused (`PATCH /runs/{id}`).
    pub patch_creates: bool,
    /// Feedback to store (idempotent by id).
    pub feedback: Vec<Feedback>,
    /// Attachments to store (replacing same-named ones).
    pub attachments: Vec<Attachment>,
}

/// What an ingest changed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct IngestSummary {
    /// Runs created.
    pub created: usize,
    /// Existing runs changed.
    pub updated: usize,
    /// Writes that changed nothing (retries).
    pub unchanged: usize,
    /// Feedback stored (new ids).
    pub feedback: usize,
}

/// Paging position in a run listing: after this (start_time, id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunCursor {
    /// Start time of the last run returned.
    pub start_time: Timestamp,
    /// Id of the last run returned.
    pub id: RunId,
}

/// A run listing, newest first (`POST /runs/query` minus the filter language).
#[derive(Debug, Clone, Default)]
pub struct RunQuery {
    /// Exactly these runs (bypasses every other condition).
    pub ids: Vec<RunId>,
    /// In these projects.
    pub sessions: Vec<SessionId>,
    /// In this trace.
    pub trace: Option<RunId>,
    /// Direct children of this run.
    pub parent_run: Option<RunId>,
    /// Of this type.
    pub run_type: Option<RunType>,
    /// Roots only (true) or children only (false).
    pub is_root: Option<bool>,
    /// Errored (true) or not (false).
    pub error: Option<bool>,
    /// Started at or after.
    pub start_time: Option<Timestamp>,
    /// Evaluated on these dataset examples.
    pub reference_examples: Vec<Uuid>,
    /// Continue after this position.
    pub cursor: Option<RunCursor>,
    /// At most this many runs.
    pub limit: usize,
}

/// The run ids of a trace, for the derived tree fields.
#[derive(Debug, Clone)]
pub struct TreeNode {
    /// The run.
    pub id: RunId,
    /// Its parent.
    pub parent_run_id: Option<RunId>,
    /// Its dotted order.
    pub dotted_order: String,
}

/// A feedback listing (`GET /feedback`).
#[derive(Debug, Clone, Default)]
pub struct FeedbackQuery {
    /// On any of these runs (all runs when empty).
    pub runs: Vec<RunId>,
    /// With any of these keys.
    pub keys: Vec<String>,
    /// From any of these source types.
    pub sources: Vec<String>,
    /// In any of these projects.
    pub sessions: Vec<SessionId>,
    /// Page size.
    pub limit: usize,
    /// Page start.
    pub offset: usize,
}

/// A project listing (`GET /sessions`).
#[derive(Debug, Clone, Default)]
pub struct SessionQuery {
    /// With exactly this name.
    pub name: Option<String>,
    /// Whose name contains this.
    pub name_contains: Option<String>,
    /// With any of these ids.
    pub ids: Vec<SessionId>,
    /// Page size.
    pub limit: usize,
    /// Page start.
    pub offset: usize,
}

/// Every read and write the service makes.
#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug {
    /// This instance's tenant id (stable across restarts).
    fn tenant_id(&self) -> TenantId;

    /// Applies one ingest request atomically.
    async fn ingest(&self, batch: IngestBatch) -> Result<IngestSummary, StoreError>;

    /// One run.
    async fn get_run(&self, id: RunId) -> Result<Option<RunRecord>, StoreError>;

    /// A page of runs, newest first, and the cursor after its last run.
    async fn query_runs(&self, query: &RunQuery) -> Result<(Vec<RunRecord>, Option<RunCursor>), StoreError>;

    /// Every run of these traces.
    async fn runs_in_traces(&self, traces: &[RunId]) -> Result<Vec<RunRecord>, StoreError>;

    /// These runs (those that exist).
    async fn runs_by_ids(&self, ids: &[RunId]) -> Result<Vec<RunRecord>, StoreError>;

    /// The tree shape of these traces.
    async fn trace_nodes(&self, traces: &[RunId]) -> Result<Vec<TreeNode>, StoreError>;

    /// Stores feedback on a run that must exist; bumps the run's change
    /// sequence. Idempotent by feedback id (returns the stored one).
    async fn create_feedback(&self, feedback: Feedback) -> Result<Feedback, StoreError>;

    /// A page of feedback, oldest first.
    async fn list_feedback(&self, query: &FeedbackQuery) -> Result<Vec<Feedback>, StoreError>;

    /// All feedback on these runs.
    async fn feedback_for_runs(&self, runs: &[RunId]) -> Result<Vec<Feedback>, StoreError>;

    /// One piece of feedback.
    async fn get_feedback(&self, id: FeedbackId) -> Result<Option<Feedback>, StoreError>;

    /// One project.
    async fn get_session(&self, id: SessionId) -> Result<Option<Session>, StoreError>;

    /// A page of projects, by name.
    async fn list_sessions(&self, query: &SessionQuery) -> Result<Vec<Session>, StoreError>;

    /// Creates a project; `Conflict` if the name is taken.
    async fn create_session(&self, session: Session) -> Result<Session, StoreError>;

    /// One attachment of a run: `(mime, bytes)`.
    async fn get_attachment(&self, run: RunId, name: &str) -> Result<Option<(String, Bytes)>, StoreError>;

    /// Names and MIME types of a run's attachments.
    async fn list_attachments(&self, run: RunId) -> Result<Vec<(String, String)>, StoreError>;

    /// The current value of the change sequence.
    async fn change_seq(&self) -> Result<i64, StoreError>;

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

    /// Finished runs of the rule's project whose change sequence is in
    /// `(after, upto]`, oldest change first, at most `limit`.
    async fn cycle_candidates(
        &self,
        rule: &Rule,
        after: i64,
        upto: i64,
        limit: usize,
    ) -> Result<Vec<RunRecord>, StoreError>;

    /// Which of `runs` the rule has already acted on.
    async fn actioned(&self, rule: RuleId, runs: &[RunId]) -> Result<HashSet<RunId>, StoreError>;

    /// Commits one cycle: watermark, logs, outbox rows and feedback, in one
    /// transaction; `Conflict` if the watermark moved meanwhile.
    async fn commit_cycle(&self, commit: CycleCommit) -> Result<(), StoreError>;

    /// A page of a rule's log, newest first.
    async fn rule_logs(&self, rule: RuleId, limit: usize, offset: usize) -> Result<Vec<RuleRunLog>, StoreError>;

    /// The rule's last cycles, newest first.
    async fn rule_cycles(&self, rule: RuleId, limit: usize) -> Result<Vec<CycleSummary>, StoreError>;

    /// Rung after every commit that makes deliveries due now (a cycle's
    /// outbox rows, a redelivery).
    fn outbox_bell(&self) -> &OutboxBell;

    /// Pending deliveries due by `query.now`, oldest first (see [`DueQuery`]).
    async fn due_deliveries(&self, query: &DueQuery) -> Result<DuePage, StoreError>;

    /// Records attempts, each with the delivery's state after it, in one
    /// transaction (the delivery worker commits them in groups); a final
    /// state also lands in the rule log of the runs carried.
    async fn record_deliveries(&self, batch: &[DeliveryRecord]) -> Result<(), StoreError>;

    /// Deliveries, newest first, with their attempts.
    async fn list_deliveries(&self, query: &DeliveryQuery) -> Result<Vec<Delivery>, StoreError>;

    /// One delivery with its attempts.
    async fn get_delivery(&self, id: DeliveryId) -> Result<Option<Delivery>, StoreError>;

    /// Puts a finished delivery back in the queue, due now, keeping its id
    /// (so receivers deduplicate it) and its history. `Ok(false)` when it
    /// is unknown; `Conflict` when it is still pending or its rule was
    /// deleted.
    async fn redeliver(&self, id: DeliveryId) -> Result<bool, StoreError>;

    /// Puts every finished delivery `which` selects back in the queue, as
    /// [`Store::redeliver`] does one, in one transaction; returns how many.
    async fn redeliver_matching(&self, which: &Redelivery) -> Result<usize, StoreError>;

    /// Deletes up to `limit` deliveries that were queued and finished
    /// (delivered or failed) before `before`: payload, state and attempts.
    /// Pending deliveries are never deleted. Returns how many were.
    async fn prune_deliveries(&self, before: Timestamp, limit: usize) -> Result<usize, StoreError>;

    /// Re-seals every stored secret not sealed under the current key;
    /// returns how many values changed.
    async fn reseal_secrets(&self) -> Result<usize, StoreError>;

    /// Undelivered webhooks: how many, and when the oldest was queued.
    async fn outbox_stats(&self) -> Result<(i64, Option<Timestamp>), StoreError>;

    /// Whether the database answers (for `/readyz`).
    async fn ping(&self) -> Result<(), StoreError>;
}
