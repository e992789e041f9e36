//! Moving a whole store to another backend (`runhook migrate-store`): a
//! backend that can be moved from implements [`Export`], one that can be
//! moved to [`Import`] (today: from the embedded store to Postgres).
//!
//! A source exports its rows page by page, in an order the target can
//! import them in: projects, runs (in change order), feedback,
//! attachments, uploaded plugins, rules (which name plugins), rule logs,
//! deliveries. Secrets stay sealed on the
//! way (a target opens them with the same keys), and ids stay what they
//! were, so receivers deduplicate a delivery sent again after the move.
//!
//! Change-sequence positions are the source's: a run keeps its place in
//! change order, and a rule's watermark and creation position are carried
//! over relative to the runs, so a rule continues where it stopped,
//! neither re-sending nor skipping. A target translates them when it
//! imports ([`Import::import_rules`], after every run).
//!
//! The target must be empty, and nothing else may write to either store
//! during the move.

use async_trait::async_trait;

use runhook_core::model::{
    ChangeSeq, DeliveryId, Feedback, FeedbackId, PluginDigest, RuleId, RunId, RunRecord, Session, Timestamp, WebhookId,
};

use crate::{Attachment, AttemptRecord, RuleRunLog, StoreError, StoredPlugin, ThreadRun};

/// An uploaded plugin with its bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportedPlugin {
    /// Its record (the rules using it are not carried: the target learns
    /// them from the rules it imports).
    pub record: StoredPlugin,
    /// The component.
    pub bytes: Vec<u8>,
}

/// A rule as stored: its spec still sealed, its progress in the source's positions.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRule {
    /// Its id.
    pub id: RuleId,
    /// Its spec as stored (JSON, secrets sealed).
    pub sealed_spec: String,
    /// When created.
    pub created_at: Timestamp,
    /// When last edited.
    pub updated_at: Timestamp,
    /// The position when it was created.
    pub created_seq: ChangeSeq,
    /// The position it has processed up to.
    pub watermark: ChangeSeq,
    /// Where its next window starts.
    pub window_end: Timestamp,
}

/// A delivery as stored: what it sends (sealed) and where it stands.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredDelivery {
    /// Its id (`webhook-id`).
    pub id: DeliveryId,
    /// Its rule.
    pub rule_id: RuleId,
    /// Its webhook, when known.
    pub webhook_id: Option<WebhookId>,
    /// The sealed URL.
    pub url: String,
    /// The headers as stored (a JSON object of sealed values).
    pub headers: String,
    /// The body.
    pub body: String,
    /// The runs it carries.
    pub run_ids: Vec<RunId>,
    /// The sealed signing secrets.
    pub secret: Option<String>,
    /// When queued.
    pub created_at: Timestamp,
    /// Its endpoint key.
    pub endpoint: String,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    /// Attempts since queued or redelivered.
    pub attempts: u32,
    /// When its next attempt is due.
    pub next_attempt_at: Timestamp,
    /// The last attempt's error.
    pub last_error: Option<String>,
    /// When it finished.
    pub finished_at: Option<Timestamp>,
    /// Every attempt, oldest first.
    pub history: Vec<AttemptRecord>,
}

/// A store a migration reads from.
#[async_trait]
pub trait Export: Send + Sync + std::fmt::Debug {
    /// Every project.
    async fn export_sessions(&self) -> Result<Vec<Session>, StoreError>;
    /// Up to `limit` runs changed after `after`, in change order.
    async fn export_runs(&self, after: ChangeSeq, limit: usize) -> Result<Vec<RunRecord>, StoreError>;
    /// Up to `limit` pieces of feedback with ids after `after`, by id.
    async fn export_feedback(&self, after: Option<FeedbackId>, limit: usize) -> Result<Vec<Feedback>, StoreError>;
    /// Up to `limit` attachments after `(run, name)`, in that order.
    async fn export_attachments(
        &self,
        after: Option<(RunId, String)>,
        limit: usize,
    ) -> Result<Vec<Attachment>, StoreError>;
    /// Up to `limit` uploaded plugins with digests after `after`, by digest.
    async fn export_plugins(
        &self,
        after: Option<PluginDigest>,
        limit: usize,
    ) -> Result<Vec<ExportedPlugin>, StoreError>;
    /// Every rule, as stored.
    async fn export_rules(&self) -> Result<Vec<StoredRule>, StoreError>;
    /// Up to `limit` rule-log lines after `(rule, run)`, in that order.
    async fn export_logs(&self, after: Option<(RuleId, RunId)>, limit: usize) -> Result<Vec<RuleRunLog>, StoreError>;
    /// Up to `limit` deliveries with ids after `after`, by id, with their attempts.
    async fn export_deliveries(
        &self,
        after: Option<DeliveryId>,
        limit: usize,
    ) -> Result<Vec<StoredDelivery>, StoreError>;
}

/// A store a migration writes to.
#[async_trait]
pub trait Import: Send + Sync + std::fmt::Debug {
    /// Whether the store holds no project, run or rule.
    async fn is_empty(&self) -> Result<bool, StoreError>;

    /// Stores projects.
    async fn import_sessions(&self, sessions: &[Session]) -> Result<(), StoreError>;
    /// Stores runs, in the change order given (after every run imported before).
    async fn import_runs(&self, runs: &[RunRecord]) -> Result<(), StoreError>;
    /// Stores feedback (moving no run: the runs' positions came with them).
    async fn import_feedback(&self, feedback: &[Feedback]) -> Result<(), StoreError>;
    /// Stores attachments.
    async fn import_attachments(&self, attachments: &[Attachment]) -> Result<(), StoreError>;
    /// Stores uploaded plugins (one already stored, same bytes, is kept).
    async fn import_plugins(&self, plugins: &[ExportedPlugin]) -> Result<(), StoreError>;
    /// Stores rules, their positions translated to this store's so that
    /// they compare with the imported runs as they did with the source's,
    /// with the plugins they use recorded (imported before them).
    async fn import_rules(&self, rules: &[StoredRule]) -> Result<(), StoreError>;
    /// Stores rule-log lines.
    async fn import_logs(&self, logs: &[RuleRunLog]) -> Result<(), StoreError>;
    /// Holds a thread rule's runs as the source held them.
    async fn import_held_runs(&self, rule: RuleId, runs: &[ThreadRun]) -> Result<(), StoreError>;
    /// Stores deliveries with their attempts (pending ones are sent by this
    /// store's workers, under the same ids).
    async fn import_deliveries(&self, deliveries: &[StoredDelivery]) -> Result<(), StoreError>;
}
