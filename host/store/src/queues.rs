//! Annotation queues: runs set aside for a person to review, one by one.
//!
//! [`QueueStore`] is the concern. A run is in a queue at most once; a
//! reviewer marks it done (it stays listed as completed) or removes it.
//! The runs still to review are in the order they were added, so "the
//! next run" is index 0.

use async_trait::async_trait;

use crate::StoreError;
use runhook_core::model::{QueueId, RunId, Timestamp};

/// An annotation queue.
#[derive(Debug, Clone, PartialEq)]
pub struct AnnotationQueue {
    /// Its id.
    pub id: QueueId,
    /// Its name.
    pub name: String,
    /// A description.
    pub description: Option<String>,
    /// What reviewers are asked to do.
    pub rubric_instructions: Option<String>,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
}

/// A run in a queue.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueEntry {
    /// The run.
    pub run_id: RunId,
    /// When it was added.
    pub added_at: Timestamp,
    /// When a reviewer last marked it, if ever.
    pub last_reviewed_time: Option<Timestamp>,
    /// Whether a reviewer is done with it.
    pub done: bool,
}

/// A queue listing (`GET /annotation-queues`).
#[derive(Debug, Clone, Default)]
pub struct QueueQuery {
    /// Only these queues (all when empty).
    pub ids: Vec<QueueId>,
    /// Exactly this name.
    pub name: Option<String>,
    /// Names containing this, case-insensitively.
    pub name_contains: Option<String>,
    /// Page size.
    pub limit: usize,
    /// Page offset.
    pub offset: usize,
}

/// When the `i`-th run of a batch added at `at` counts as added: a
/// microsecond apart each, so a batch keeps its order in the queue.
pub fn added_at(at: Timestamp, i: usize) -> Timestamp {
    Timestamp::from_datetime(at.as_datetime() + chrono::Duration::microseconds(i64::try_from(i).unwrap_or(i64::MAX)))
}

/// Annotation queues and the runs in them.
#[async_trait]
pub trait QueueStore: Send + Sync + std::fmt::Debug {
    /// Stores a new queue; a conflict when its id is taken.
    async fn create_queue(&self, queue: &AnnotationQueue) -> Result<(), StoreError>;

    /// A queue.
    async fn get_queue(&self, id: QueueId) -> Result<Option<AnnotationQueue>, StoreError>;

    /// Queues, newest first.
    async fn list_queues(&self, query: &QueueQuery) -> Result<Vec<AnnotationQueue>, StoreError>;

    /// Deletes a queue and its entries; whether it existed.
    async fn delete_queue(&self, id: QueueId) -> Result<bool, StoreError>;

    /// Adds runs to a queue (a run already in it stays as it is), at `at`.
    /// Not found when the queue or a run is missing; then nothing is added.
    async fn add_to_queue(&self, queue: QueueId, runs: &[RunId], at: Timestamp) -> Result<(), StoreError>;

    /// A queue's runs in the order added: all, or only those done or not.
    async fn queue_entries(
        &self,
        queue: QueueId,
        done: Option<bool>,
        limit: usize,
        offset: usize,
    ) -> Result<Vec<QueueEntry>, StoreError>;

    /// Marks a run of a queue reviewed (done or not) at `at`; whether it is in the queue.
    async fn mark_reviewed(&self, queue: QueueId, run: RunId, done: bool, at: Timestamp) -> Result<bool, StoreError>;

    /// Removes a run from a queue; whether it was in it.
    async fn remove_from_queue(&self, queue: QueueId, run: RunId) -> Result<bool, StoreError>;
}
