//! Claiming deliveries and recording attempts in the store, committed in
//! groups.
//!
//! Every attempt is claimed before its first request and recorded before
//! its delivery moves on (that is what makes a crash resume at the right
//! attempt, and what keeps two workers from sending one attempt), but one
//! transaction per claim and per record would make the single SQLite
//! writer the ceiling of the whole worker. So claims and records are sent
//! to one task that commits whatever has queued up, up to `GROUP` at a
//! time (the records of a group in one transaction, then its claims in
//! another), and then answers each waiting delivery. An idle system
//! commits each alone, at once; a busy one amortises the commits.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use tokio::sync::{mpsc, oneshot};

use super::drive::Journal;
use super::send::AttemptReport;
use crate::config::DeliverySettings;
use runhook_core::model::{DeliveryId, Timestamp};
use runhook_store::{
    AttemptRecord, ClaimOutcome, ClaimTerms, ClaimToken, DeliveryRecord, DeliveryStatus, OutboxRow, OutboxStore,
};

/// The most requests committed in one group.
const GROUP: usize = 256;
/// A group of records this large means a busy worker; it waits [`LINGER`]
/// for more (a group with a claim does not wait).
const LINGER_FROM: usize = 4;
/// How long a busy worker's group waits for more requests.
const LINGER: Duration = Duration::from_millis(2);

enum Request {
    Claim(DeliveryId, oneshot::Sender<Option<ClaimOutcome>>),
    Record(DeliveryRecord, oneshot::Sender<bool>),
}

/// How long a claim lasts, and when interrupted attempts give a delivery up.
#[derive(Debug, Clone, Copy)]
pub struct ClaimPolicy {
    /// Past the longest an attempt and its record can take: twice the
    /// attempt deadline plus 5 s, so a claim still held at its expiry means
    /// the worker stopped during the attempt.
    pub lease: Duration,
    /// Attempts (interrupted ones included) after which a delivery whose
    /// attempt was interrupted again fails: the most attempts the policy
    /// makes of any outcome class.
    pub give_up_after: u32,
    /// Attempts in flight to one endpoint at once, across every replica.
    pub per_endpoint: u32,
}

impl ClaimPolicy {
    /// The policy for deliveries under `settings`.
    pub fn of(settings: &DeliverySettings) -> Self {
        Self {
            lease: settings.attempt_timeout * 2 + Duration::from_secs(5),
            give_up_after: 1 + settings.transport_retries.max(settings.server_error_retries),
            per_endpoint: u32::try_from(settings.per_endpoint_concurrency).unwrap_or(u32::MAX),
        }
    }
}

/// The store as a [`Journal`], with group commit. Cheap to clone.
#[derive(Clone)]
pub struct StoreJournal {
    tx: mpsc::Sender<Request>,
}

impl std::fmt::Debug for StoreJournal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreJournal").finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Request::Claim(id, _) => write!(f, "Claim({id})"),
            Request::Record(r, _) => write!(f, "Record({})", r.id),
        }
    }
}

impl StoreJournal {
    /// Starts the committing task; it ends when the last clone is dropped,
    /// after committing what was sent. Await the handle to know it is done.
    pub fn spawn(store: Arc<dyn OutboxStore>, policy: ClaimPolicy) -> (Self, tokio::task::JoinHandle<()>) {
        let (tx, mut rx) = mpsc::channel::<Request>(GROUP * 4);
        let task = tokio::spawn(async move {
            let mut batch = Vec::with_capacity(GROUP);
            while rx.recv_many(&mut batch, GROUP).await > 0 {
                let claiming = batch.iter().any(|r| matches!(r, Request::Claim(..)));
                if batch.len() >= LINGER_FROM && !claiming {
                    // Busy: records arrive faster than commits finish. Waiting
                    // a moment for more costs the deliveries nothing (their
                    // slots are free already) and saves commits. A claim never
                    // waits: its delivery's request waits for it.
                    let more = async {
                        loop {
                            let room = GROUP - batch.len();
                            if room == 0 || rx.recv_many(&mut batch, room).await == 0 {
                                break;
                            }
                        }
                    };
                    let _ = tokio::time::timeout(LINGER, more).await;
                }
                let mut records = Vec::new();
                let mut recorded = Vec::new();
                let mut claims = Vec::new();
                let mut claimed = Vec::new();
                for request in batch.drain(..) {
                    match request {
                        Request::Record(record, done) => {
                            records.push(record);
                            recorded.push(done);
                        }
                        Request::Claim(id, done) => {
                            claims.push(id);
                            claimed.push(done);
                        }
                    }
                }
                // Records first (they free the claims of finished attempts),
                // then claims, in one call.
                let terms = ClaimTerms {
                    now: Timestamp::now(),
                    lease: policy.lease,
                    give_up_after: policy.give_up_after,
                    per_endpoint: policy.per_endpoint,
                };
                match store.record_and_claim(&records, &claims, &terms).await {
                    Ok((refused, outcomes)) => {
                        for (record, done) in records.iter().zip(recorded) {
                            let _ = done.send(!refused.contains(&record.id));
                        }
                        for (outcome, done) in outcomes.into_iter().zip(claimed) {
                            let _ = done.send(Some(outcome));
                        }
                    }
                    Err(e) => {
                        // The rows stay as they were: pending rows are attempted
                        // again (same webhook-id) once their claims expire.
                        tracing::error!(
                            attempts = records.len(), claims = claims.len(), error = %e,
                            "cannot record delivery attempts or claim deliveries"
                        );
                        for done in recorded {
                            let _ = done.send(false);
                        }
                        for done in claimed {
                            let _ = done.send(None);
                        }
                    }
                }
            }
        });
        (Self { tx }, task)
    }
}

impl Journal for StoreJournal {
    fn claim(&self, row: &OutboxRow) -> BoxFuture<'static, Option<ClaimOutcome>> {
        let (tx, id) = (self.tx.clone(), row.id);
        Box::pin(async move {
            let (done, wait) = oneshot::channel();
            tx.send(Request::Claim(id, done)).await.ok()?;
            wait.await.ok().flatten()
        })
    }

    fn record(
        &self,
        row: &OutboxRow,
        claim: ClaimToken,
        n: u32,
        report: &AttemptReport,
        status: DeliveryStatus,
    ) -> BoxFuture<'static, bool> {
        let error = match &status {
            DeliveryStatus::Failed(e) | DeliveryStatus::Retry { error: e, .. } => Some(e.clone()),
            DeliveryStatus::Delivered => None,
        };
        let attempt = AttemptRecord {
            attempt: n,
            started_at: report.started_at,
            duration_ms: u64::try_from(report.duration.as_millis()).unwrap_or(u64::MAX),
            class: report.class.label().into(),
            status_code: report.class.status(),
            error,
        };
        let record = DeliveryRecord {
            id: row.id,
            claim,
            rule_id: row.rule_id,
            run_ids: row.run_ids.clone(),
            attempts: n,
            attempt,
            status,
        };
        let tx = self.tx.clone();
        Box::pin(async move {
            let (done, wait) = oneshot::channel();
            if tx.send(Request::Record(record, done)).await.is_err() {
                return false;
            }
            wait.await.unwrap_or(false)
        })
    }
}
