//! How the API tells the rule scheduler that rules changed or that one
//! should run now, without either importing the other.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::Notify;

use super::ids::RuleId;

/// Shared by the API (which signals) and the scheduler (which waits).
#[derive(Debug, Default)]
pub struct RuleSignals {
    changed: Notify,
    triggers: Mutex<HashMap<RuleId, Arc<Notify>>>,
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
}
