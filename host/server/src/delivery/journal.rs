//! Recording attempts in the store, committed in groups.
//!
//! Every attempt must be recorded before its delivery moves on (that is what
//! makes a crash resume at the right attempt), but one transaction per
//! attempt would make the single SQLite writer the ceiling of the whole
//! worker. So attempts are sent to one task that commits whatever has
//! queued up, up to `GROUP` at a time, in one transaction, and then
//! answers each waiting delivery. An idle system commits each attempt
//! alone, at once; a busy one amortises the commit over many.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use tokio::sync::{mpsc, oneshot};

use super::drive::Journal;
use super::send::AttemptReport;
use runhook_store::{AttemptRecord, DeliveryRecord, DeliveryStatus, OutboxRow, OutboxStore};

/// The most attempts committed in one transaction.
const GROUP: usize = 256;
/// A group this large means a busy worker; it waits [`LINGER`] for more.
const LINGER_FROM: usize = 4;
/// How long a busy worker's group waits for more attempts.
const LINGER: Duration = Duration::from_millis(2);

type Request = (DeliveryRecord, oneshot::Sender<()>);

/// The store as a [`Journal`], with group commit. Cheap to clone.
#[derive(Debug, Clone)]
pub struct StoreJournal {
    tx: mpsc::Sender<Request>,
}

impl StoreJournal {
    /// Starts the committing task; it ends when the last clone is dropped,
    /// after committing what was sent. Await the handle to know it is done.
    pub fn spawn(store: Arc<dyn OutboxStore>) -> (Self, tokio::task::JoinHandle<()>) {
        let (tx, mut rx) = mpsc::channel::<Request>(GROUP * 4);
        let task = tokio::spawn(async move {
            let mut batch = Vec::with_capacity(GROUP);
            while rx.recv_many(&mut batch, GROUP).await > 0 {
                if batch.len() >= LINGER_FROM {
                    // Busy: attempts arrive faster than commits finish. Waiting
                    // a moment for more costs the deliveries nothing (their
                    // slots are free already) and saves commits.
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
                let (records, waiters): (Vec<DeliveryRecord>, Vec<oneshot::Sender<()>>) = batch.drain(..).unzip();
                if let Err(e) = store.record_deliveries(&records).await {
                    // The rows stay as they were: pending rows are attempted
                    // again (same webhook-id) by this process or after a restart.
                    tracing::error!(attempts = records.len(), error = %e, "cannot record delivery attempts");
                }
                for w in waiters {
                    let _ = w.send(());
                }
            }
        });
        (Self { tx }, task)
    }
}

impl Journal for StoreJournal {
    fn record(
        &self,
        row: &OutboxRow,
        n: u32,
        report: &AttemptReport,
        status: DeliveryStatus,
    ) -> BoxFuture<'static, ()> {
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
            rule_id: row.rule_id,
            run_ids: row.run_ids.clone(),
            attempts: n,
            attempt,
            status,
        };
        let tx = self.tx.clone();
        Box::pin(async move {
            let (done, wait) = oneshot::channel();
            if tx.send((record, done)).await.is_ok() {
                let _ = wait.await;
            }
        })
    }
}
