//! How the API and the store tell the rule scheduler that something
//! changed, without either importing the other: rules changed, a rule
//! should run now, or a project's runs changed (the wake-up on ingest).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{Notify, watch};

use super::ids::{RuleId, SessionId};

/// Shared by the API and the store (which signal) and the scheduler
/// (which waits).
#[derive(Debug, Default)]
pub struct RuleSignals {
    changed: Notify,
    triggers: Mutex<HashMap<RuleId, Arc<Notify>>>,
    /// Per project, a generation counter bumped by every commit that
    /// changed its runs. A counter rather than a `Notify`: a rule task
    /// busy in a cycle when runs arrive sees the bump when it next looks,
    /// and many bumps while it waits are one wake-up.
    projects: Mutex<HashMap<SessionId, watch::Sender<u64>>>,
}

impl RuleSignals {
    /// Rules were created, changed or deleted.
    pub fn rules_changed(&self) {
        self.changed.notify_one();
    }

    /// Waits for the next change signal.
    pub async fn changed(&self) {
        self.changed.notified().await;
    }

    /// Asks rule `id` to run a cycle now.
    pub fn trigger(&self, id: RuleId) {
        self.trigger_handle(id).notify_one();
    }

    /// What rule `id`'s task waits on for triggers.
    pub fn trigger_handle(&self, id: RuleId) -> Arc<Notify> {
        self.triggers.lock().unwrap_or_else(PoisonError::into_inner).entry(id).or_default().clone()
    }

    /// A commit changed runs of `project` (on this process or, through the
    /// database's notifications, another replica).
    pub fn runs_changed(&self, project: SessionId) {
        let mut projects = self.projects.lock().unwrap_or_else(PoisonError::into_inner);
        projects.entry(project).or_insert_with(|| watch::channel(0).0).send_modify(|g| *g += 1);
    }

    /// Runs of any project may have changed unseen (notifications were
    /// lost while the listener reconnected): wakes every watcher.
    pub fn all_runs_changed(&self) {
        let projects = self.projects.lock().unwrap_or_else(PoisonError::into_inner);
        for generation in projects.values() {
            generation.send_modify(|g| *g += 1);
        }
    }

    /// What a rule watching `project` waits on: changes when its runs do.
    pub fn project(&self, project: SessionId) -> watch::Receiver<u64> {
        let mut projects = self.projects.lock().unwrap_or_else(PoisonError::into_inner);
        projects.entry(project).or_insert_with(|| watch::channel(0).0).subscribe()
    }
}
