//! Retention: finished deliveries, and rule cycle summaries, are deleted
//! once they are older than the operator's `delivery.retention_days`, so
//! the database does not grow without bound.
//!
//! A delivery's payload holds the runs it carried (their inputs and
//! outputs), so keeping every payload forever would be both a disk leak
//! and a store of data nobody asked to keep. What goes: a delivery queued
//! and finished (delivered or failed) before the cutoff, with its payload,
//! sealed target and attempt history; a rule's cycle summaries whose
//! window ended before the cutoff, but its newest. What stays: every
//! pending delivery, and the rule log's line for each run (its outcome
//! names the delivery, which the deliveries API then no longer finds; the
//! line is what keeps a run from being acted on twice).
//!
//! The task prunes shortly after start and then periodically, in chunks
//! of `CHUNK`, so no single transaction holds the store's one writer for
//! long. Of several replicas on one database, one prunes: the holder of
//! the `retention` singleton (held for two periods, renewed at each pass).

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use runhook_core::model::Timestamp;
use runhook_store::{OutboxStore, Store, StoreError};

/// Deliveries deleted per transaction.
const CHUNK: usize = 1000;

/// When the task prunes.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    /// How long after start the first pass runs (not at once: start-up
    /// has writes of its own to make).
    pub first: Duration,
    /// The time between passes.
    pub every: Duration,
}

impl Default for Schedule {
    fn default() -> Self {
        Self { first: Duration::from_secs(60), every: Duration::from_secs(3600) }
    }
}

/// Deletes deliveries finished more than `keep` ago, on `schedule`, until
/// `shutdown`, while replica `me` holds the cluster's `retention` singleton.
pub async fn run(store: Arc<dyn Store>, me: String, keep: Duration, schedule: Schedule, shutdown: CancellationToken) {
    let keep = chrono::Duration::from_std(keep).unwrap_or(chrono::Duration::MAX);
    let mut wait = schedule.first;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        wait = schedule.every;
        match store.hold_singleton("retention", &me, schedule.every * 2).await {
            Ok(true) => {}
            Ok(false) => continue, // another replica prunes
            Err(e) => {
                tracing::error!(error = %e, "cannot take the retention lease");
                continue;
            }
        }
        let Some(cutoff) = chrono::Utc::now().checked_sub_signed(keep) else { continue };
        let cutoff = Timestamp::from_datetime(cutoff);
        match prune(store.as_ref(), cutoff, &shutdown).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(deliveries = n, "deleted finished deliveries past their retention"),
            // The next pass tries again; nothing was half-deleted (each
            // chunk is one transaction).
            Err(e) => tracing::error!(error = %e, "cannot delete old deliveries"),
        }
        match prune_cycles(store.as_ref(), cutoff, &shutdown).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(cycles = n, "deleted rule cycle summaries past their retention"),
            Err(e) => tracing::error!(error = %e, "cannot delete old rule cycle summaries"),
        }
    }
}

/// Deletes the rule cycle summaries of windows ended before `before` (each
/// rule's newest stays), a chunk at a time; returns how many.
async fn prune_cycles(store: &dyn Store, before: Timestamp, shutdown: &CancellationToken) -> Result<usize, StoreError> {
    let mut total = 0;
    loop {
        let n = store.prune_cycles(before, CHUNK).await?;
        total += n;
        if n < CHUNK || shutdown.is_cancelled() {
            return Ok(total);
        }
        tokio::task::yield_now().await;
    }
}

/// Deletes every delivery finished before `before`, a chunk at a time;
/// returns how many.
async fn prune(store: &dyn OutboxStore, before: Timestamp, shutdown: &CancellationToken) -> Result<usize, StoreError> {
    let pruned = metrics::counter!("runhook_deliveries_pruned_total");
    let mut total = 0;
    loop {
        let n = store.prune_deliveries(before, CHUNK).await?;
        total += n;
        pruned.increment(n as u64);
        if n < CHUNK || shutdown.is_cancelled() {
            return Ok(total);
        }
        // Let the worker's records and rule cycles have the writer between chunks.
        tokio::task::yield_now().await;
    }
}
