//! Runs, feedback, projects and attachments: what ingest writes and the
//! read API and the rule engine's selection read.
//!
//! [`RunStore`] is the concern; the records it takes and returns sit beside
//! it. The merge of posts and patches is not a backend's business: it lives
//! in [`crate::ingest`], and a backend's `ingest` hands it a transaction.

use async_trait::async_trait;
use bytes::Bytes;
use uuid::Uuid;

use runhook_core::model::{
    Feedback, FeedbackId, RunId, RunRecord, RunType, RunWrite, Session, SessionId, TenantId, Timestamp,
};

use crate::StoreError;

/// The project runs go to when they name none (as LangSmith does).
pub const DEFAULT_PROJECT: &str = "default";

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
#[derive(Debug, Default, Clone)]
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
    /// Leave out the fields that can be large (inputs, outputs, events,
    /// serialized): they read as absent. For a caller that returns none of
    /// them, so that one large run does not cost every page its size.
    pub lean: bool,
    /// End the page early once its runs' large fields pass this many bytes
    /// of stored text (the page still has at least one run, and the cursor
    /// continues after its last): a page of large runs costs about this
    /// much, not `limit` times the largest run. `None`: no budget.
    pub max_bytes: Option<usize>,
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

/// Runs, feedback, projects and attachments.
#[async_trait]
pub trait RunStore: Send + Sync + std::fmt::Debug {
    /// This instance's tenant id (stable across restarts).
    fn tenant_id(&self) -> TenantId;

    /// Whether the database answers (for `/readyz`).
    async fn ping(&self) -> Result<(), StoreError>;

    /// Applies one ingest request atomically (see [`crate::ingest`]).
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

    /// Stores feedback on a run that must exist; a new one moves the run's
    /// change sequence. Idempotent by feedback id (returns the stored one).
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
}
