//! The ingest merge: posts and patches, in any order, applied as one
//! transaction. Every backend's `RunStore::ingest` runs [`apply`] inside a
//! transaction of its own and implements only the SQL ([`IngestTx`]).
//!
//! The rules (see `runhook_core::model::run` for why both are merges):
//! - a post of a known run fills the fields it lacks; a post of an unknown
//!   run creates it, in the project it names (by id: must exist; by name:
//!   created on first use; neither: [`DEFAULT_PROJECT`]);
//! - a patch overwrites the fields it carries; a patch of an unknown run
//!   creates it where the SDK's senders can reorder (`patch_creates`, the
//!   batch endpoints) and is `RunNotFound` otherwise (`PATCH /runs/{id}`);
//! - each run created or changed takes one new change sequence value; a
//!   write that changes nothing (a retry) takes none;
//! - new feedback (by id) moves its run's change sequence; known ids are
//!   ignored, so a retried feedback post changes nothing;
//! - attachments replace same-named ones.
//!
//! Order within the transaction: posts, then patches, then the run writes,
//! then feedback, then attachments. Any error rolls all of it back.

use std::collections::HashMap;

use runhook_core::model::run::InvalidRun;
use runhook_core::model::{RunId, RunRecord, RunWrite, SessionId, Timestamp};

use crate::runs::{Attachment, DEFAULT_PROJECT, IngestBatch, IngestSummary};
use crate::{ChangeTx, StoreError};

/// The statements an ingest needs, inside one open transaction.
#[allow(async_fn_in_trait)] // used generically inside one crate's backend, never as `dyn`
pub trait IngestTx: ChangeTx {
    /// The stored runs among `ids` (sorted, deduplicated).
    async fn load_runs(&mut self, ids: &[RunId]) -> Result<Vec<RunRecord>, StoreError>;
    /// Whether project `id` exists.
    async fn session_exists(&mut self, id: SessionId) -> Result<bool, StoreError>;
    /// The project named `name`, created (started at `now`) when there is none.
    async fn session_named(&mut self, name: &str, now: Timestamp) -> Result<SessionId, StoreError>;
    /// Stamps `runs` with new change sequence values, in order, and writes
    /// them (`created` tells which to insert rather than update).
    async fn write_runs(&mut self, runs: &mut [(&mut RunRecord, bool)]) -> Result<(), StoreError>;
    /// Stores an attachment, replacing a same-named one.
    async fn put_attachment(&mut self, attachment: &Attachment) -> Result<(), StoreError>;
}

/// How a run in the batch relates to the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    New,
    Changed,
    Unchanged,
}

/// Applies `batch` through `tx`; the caller commits.
pub async fn apply(tx: &mut impl IngestTx, batch: IngestBatch, now: Timestamp) -> Result<IngestSummary, StoreError> {
    let mut ids: Vec<RunId> = batch.posts.iter().chain(&batch.patches).filter_map(|w| w.id).collect();
    ids.sort_unstable();
    ids.dedup();
    let mut runs: HashMap<RunId, (RunRecord, State)> =
        tx.load_runs(&ids).await?.into_iter().map(|r| (r.id, (r, State::Unchanged))).collect();
    let mut sessions = Sessions::default();

    for w in batch.posts {
        let id = w.id.ok_or(InvalidRun::Missing { run: "(post)".into(), field: "id" })?;
        match runs.get_mut(&id) {
            Some((run, state)) => {
                if run.fill(w, now)? && *state == State::Unchanged {
                    *state = State::Changed;
                }
            }
            None => {
                let session = sessions.resolve(tx, &w, now).await?;
                runs.insert(id, (RunRecord::create(id, session, w, now)?, State::New));
            }
        }
    }
    for w in batch.patches {
        let id = w.id.ok_or(InvalidRun::Missing { run: "(patch)".into(), field: "id" })?;
        match runs.get_mut(&id) {
            Some((run, state)) => {
                if run.patch(w, now)? && *state == State::Unchanged {
                    *state = State::Changed;
                }
            }
            None if batch.patch_creates => {
                let session = sessions.resolve(tx, &w, now).await?;
                let run = RunRecord::create(id, session, w, now).map_err(|e| match e {
                    InvalidRun::Missing { .. } => StoreError::RunNotFound(id),
                    other => other.into(),
                })?;
                runs.insert(id, (run, State::New));
            }
            None => return Err(StoreError::RunNotFound(id)),
        }
    }

    let mut summary = IngestSummary {
        unchanged: runs.values().filter(|(_, s)| *s == State::Unchanged).count(),
        ..IngestSummary::default()
    };
    let mut changed: Vec<(&mut RunRecord, bool)> = runs
        .values_mut()
        .filter(|(_, s)| *s != State::Unchanged)
        .map(|(run, state)| (run, *state == State::New))
        .collect();
    summary.created = changed.iter().filter(|(_, created)| *created).count();
    summary.updated = changed.len() - summary.created;
    tx.write_runs(&mut changed).await?;

    for f in &batch.feedback {
        if crate::add_feedback(tx, f, now).await? {
            summary.feedback += 1;
        }
    }
    for a in &batch.attachments {
        tx.put_attachment(a).await?;
    }
    Ok(summary)
}

/// Projects resolved within one ingest: by id (must exist) or by name
/// (created on first use, like LangSmith).
#[derive(Default)]
struct Sessions {
    by_name: HashMap<String, SessionId>,
    known_ids: Vec<SessionId>,
}

impl Sessions {
    async fn resolve(&mut self, tx: &mut impl IngestTx, w: &RunWrite, now: Timestamp) -> Result<SessionId, StoreError> {
        if let Some(id) = w.session_id {
            if self.known_ids.contains(&id) {
                return Ok(id);
            }
            if !tx.session_exists(id).await? {
                return Err(StoreError::SessionNotFound(id.to_string()));
            }
            self.known_ids.push(id);
            return Ok(id);
        }
        let name = w.session_name.as_deref().map(str::trim).filter(|n| !n.is_empty()).unwrap_or(DEFAULT_PROJECT);
        if let Some(id) = self.by_name.get(name) {
            return Ok(*id);
        }
        let id = tx.session_named(name, now).await?;
        self.by_name.insert(name.to_string(), id);
        Ok(id)
    }
}
