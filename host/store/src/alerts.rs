//! Alert rules and their state: the definitions, and what each evaluation
//! leaves for the next (its level, incident, last notification).
//!
//! [`AlertStore`] is the concern. An evaluation commits its state and its
//! notification's deliveries in one transaction, and only over the state
//! it read ([`Alert::version`]): two replicas that evaluate one alert at
//! once (a paused one waking up) commit one notification, never two.

use async_trait::async_trait;

use crate::StoreError;
use crate::outbox::OutboxRow;
use runhook_core::model::alert::{AlertSpec, AlertState};
use runhook_core::model::{AlertId, Timestamp};

/// A stored alert.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    /// Its id.
    pub id: AlertId,
    /// Its definition.
    pub spec: AlertSpec,
    /// When created.
    pub created_at: Timestamp,
    /// When last changed.
    pub updated_at: Timestamp,
    /// Where its evaluations left it.
    pub state: AlertState,
    /// Counts the evaluations committed: the next commits over this one.
    pub version: i64,
}

/// Alert rules and their state.
#[async_trait]
pub trait AlertStore: Send + Sync + std::fmt::Debug {
    /// Creates an alert, ok and never evaluated.
    async fn create_alert(&self, id: AlertId, spec: &AlertSpec) -> Result<Alert, StoreError>;
    /// Replaces an alert's definition; its state is kept.
    async fn update_alert(&self, id: AlertId, spec: &AlertSpec) -> Result<Alert, StoreError>;
    /// Deletes an alert and its notifications not yet delivered; false if absent.
    async fn delete_alert(&self, id: AlertId) -> Result<bool, StoreError>;
    /// One alert.
    async fn get_alert(&self, id: AlertId) -> Result<Option<Alert>, StoreError>;
    /// Every alert, oldest first.
    async fn list_alerts(&self) -> Result<Vec<Alert>, StoreError>;
    /// Commits one evaluation of `id` made over `version`: its state, and
    /// its notification's deliveries (their `rule_id` is the alert's id).
    /// `Conflict` when another evaluation committed since or the alert is
    /// gone, and then nothing is kept.
    async fn commit_evaluation(
        &self,
        id: AlertId,
        version: i64,
        state: &AlertState,
        outbox: &[OutboxRow],
    ) -> Result<(), StoreError>;
}

/// The state as stored (JSON).
pub fn state_json(state: &AlertState) -> String {
    // A struct of plain fields always serialises.
    serde_json::to_string(state).unwrap_or_else(|_| "{}".into())
}

/// A stored state, read.
pub fn state_from(text: &str) -> Result<AlertState, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::corrupt("alerts.state", e))
}
