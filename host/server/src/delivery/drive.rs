//! One delivery, from its next attempt to an outcome: claim, attempt,
//! decide by the policy, record, wait, and again.
//!
//! Each attempt is made under a claim (see `runhook_store::Claim`), taken
//! just before its first request: no other worker sends the delivery while
//! the claim is live, and a crash during the attempt leaves a claim that
//! expires, which the next claim records as an interrupted attempt (so the
//! next attempt's number says so). Every attempt is recorded (with the
//! state it leaves the delivery in) before the next one starts, so a crash
//! at any point leaves a pending row with the right attempt count and due
//! time, completed after restart with the same `webhook-id`. A record
//! refused (the claim was lost to another worker, or the delivery is gone)
//! ends the drive. A retry's wait happens here, in the delivery's task, so
//! its timing is exact; shutdown interrupts the wait and leaves the row due
//! at the recorded time.

use std::future::Future;

use futures_util::future::BoxFuture;
use tokio_util::sync::CancellationToken;

use super::policy::{Step, next_step};
use super::send::{AttemptReport, Sender};
use crate::config::DeliverySettings;
use runhook_core::model::Timestamp;
use runhook_store::{ClaimOutcome, ClaimToken, DeliveryStatus, OutboxRow};

/// Makes attempts: the real [`Sender`], or a script in tests.
pub trait Attempts: Send + Sync {
    /// Makes attempt `n` of `row`.
    fn attempt(&self, row: &OutboxRow, n: u32) -> impl Future<Output = AttemptReport> + Send;
}

impl Attempts for Sender {
    fn attempt(&self, row: &OutboxRow, n: u32) -> impl Future<Output = AttemptReport> + Send {
        Sender::attempt(self, row, n)
    }
}

/// Claims deliveries and records attempts: the store (through
/// [`StoreJournal`](super::journal::StoreJournal)), or a list in tests.
pub trait Journal: Send + Sync {
    /// Claims `row` for its next attempt; `None` when the claim could not be
    /// made (the store failed).
    fn claim(&self, row: &OutboxRow) -> BoxFuture<'static, Option<ClaimOutcome>>;

    /// Records attempt `n` of `row`, made under `claim`, and the state it
    /// leaves the delivery in; whether the record was kept (false: the
    /// claim was lost, or the store failed).
    fn record(
        &self,
        row: &OutboxRow,
        claim: ClaimToken,
        n: u32,
        report: &AttemptReport,
        status: DeliveryStatus,
    ) -> BoxFuture<'static, bool>;
}

/// What a freed slot tells the worker: its endpoint, and whether the
/// endpoint was found at its limit across the cluster (other replicas'
/// workers fill it), so the worker leaves it alone for a while.
pub type Freed = (String, bool);

/// A delivery's hold on its endpoint's concurrency slot; dropping it frees
/// the slot (the worker learns it through a channel).
#[derive(Debug)]
pub struct SlotGuard {
    freed: Option<tokio::sync::mpsc::UnboundedSender<Freed>>,
    endpoint: String,
    busy_elsewhere: bool,
}

impl SlotGuard {
    /// A slot of `endpoint`, reported to `freed` when dropped.
    pub fn new(freed: tokio::sync::mpsc::UnboundedSender<Freed>, endpoint: String) -> Self {
        Self { freed: Some(freed), endpoint, busy_elsewhere: false }
    }

    /// A slot nobody counts (tests, tools).
    pub fn untracked() -> Self {
        Self { freed: None, endpoint: String::new(), busy_elsewhere: false }
    }
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        if let Some(tx) = self.freed.take() {
            let _ = tx.send((std::mem::take(&mut self.endpoint), self.busy_elsewhere));
        }
    }
}

/// How a delivery's drive ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryOutcome {
    /// A 2xx arrived.
    Delivered,
    /// The policy gave up.
    Failed,
    /// Shutdown came during a retry's wait; the row is due later.
    Interrupted,
    /// Not this worker's to send: another worker holds its claim, it is
    /// not due or gone, or this worker's record was refused.
    Skipped,
}

/// Drives `row` to an outcome.
pub async fn drive(
    sender: &impl Attempts,
    journal: &impl Journal,
    settings: &DeliverySettings,
    mut row: OutboxRow,
    stop: &CancellationToken,
    slot: SlotGuard,
) -> DeliveryOutcome {
    let mut slot = Some(slot);
    loop {
        let outcome = journal.claim(&row).await;
        let label = match &outcome {
            Some(ClaimOutcome::Claimed { .. }) => "claimed",
            Some(ClaimOutcome::Busy) => "busy",
            Some(ClaimOutcome::GaveUp) => "gave_up",
            Some(ClaimOutcome::Missed) | None => "missed",
        };
        metrics::counter!("runhook_delivery_claims_total", "outcome" => label).increment(1);
        let claim = match outcome {
            Some(ClaimOutcome::Claimed { claim, attempts }) => {
                // Interrupted attempts count: the next number follows them.
                row.attempts = attempts;
                claim.token
            }
            Some(ClaimOutcome::GaveUp) => {
                tracing::warn!(delivery = %row.id, rule = %row.rule_id, "webhook delivery failed: its attempts were interrupted until the retry limit");
                metrics::counter!("runhook_deliveries_total", "outcome" => "failed").increment(1);
                return DeliveryOutcome::Failed;
            }
            Some(ClaimOutcome::Busy) => {
                if let Some(slot) = slot.as_mut() {
                    slot.busy_elsewhere = true;
                }
                return DeliveryOutcome::Skipped;
            }
            Some(ClaimOutcome::Missed) | None => return DeliveryOutcome::Skipped,
        };
        let n = row.attempts + 1;
        let report = sender.attempt(&row, n).await;
        let step = next_step(settings, n, &report.class, report.retry_after, rand::random());
        metrics::histogram!("runhook_delivery_attempt_duration_seconds").record(report.duration.as_secs_f64());
        metrics::counter!("runhook_delivery_attempts_total", "class" => report.class.label()).increment(1);
        let (class, duration_ms) = (report.class.label(), report.duration.as_millis() as u64);
        // A success is the common case, logged at debug: at info, a busy
        // worker's log would be one line per webhook. What went wrong is
        // always logged.
        let status = match step {
            Step::Delivered => {
                tracing::debug!(
                    delivery = %row.id, rule = %row.rule_id, attempt = n, class, duration_ms,
                    "webhook attempt: delivered ({})", report.class.describe(settings)
                );
                DeliveryStatus::Delivered
            }
            Step::Fail => {
                let message = report.class.describe(settings);
                tracing::warn!(
                    delivery = %row.id, rule = %row.rule_id, attempt = n, class, duration_ms,
                    "webhook attempt: {message}; delivery failed"
                );
                DeliveryStatus::Failed(message)
            }
            Step::Retry(wait) => {
                let message = report.class.describe(settings);
                tracing::info!(
                    delivery = %row.id, rule = %row.rule_id, attempt = n, class, duration_ms,
                    retry_in_ms = wait.as_millis() as u64, "webhook attempt: {message}; retrying"
                );
                let at = chrono::Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default();
                DeliveryStatus::Retry { at: Timestamp::from_datetime(at), error: message }
            }
        };
        if !matches!(step, Step::Retry(_)) {
            // No more requests: the endpoint's slot goes to the next
            // delivery while this one waits for its record to commit.
            drop(slot.take());
        }
        let kept = journal.record(&row, claim, n, &report, status).await;
        row.attempts = n;
        if !kept {
            tracing::warn!(delivery = %row.id, rule = %row.rule_id, attempt = n, "webhook attempt not recorded: its claim was lost or the delivery is gone");
            return DeliveryOutcome::Skipped;
        }
        let outcome = match step {
            Step::Retry(wait) => {
                tokio::select! {
                    _ = stop.cancelled() => DeliveryOutcome::Interrupted,
                    _ = tokio::time::sleep(wait) => continue,
                }
            }
            Step::Delivered => DeliveryOutcome::Delivered,
            Step::Fail => DeliveryOutcome::Failed,
        };
        if matches!(outcome, DeliveryOutcome::Delivered | DeliveryOutcome::Failed) {
            let label = if outcome == DeliveryOutcome::Delivered { "delivered" } else { "failed" };
            metrics::counter!("runhook_deliveries_total", "outcome" => label).increment(1);
            let age = chrono::Utc::now().signed_duration_since(row.created_at.as_datetime());
            metrics::histogram!("runhook_delivery_latency_seconds").record(age.num_milliseconds().max(0) as f64 / 1e3);
        }
        return outcome;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use tokio::time::Instant;

    use super::*;
    use crate::delivery::policy::AttemptClass;
    use runhook_core::model::{RuleId, WebhookTarget};

    /// Answers attempts from a script, noting when each was made.
    struct Script {
        answers: Mutex<Vec<(AttemptClass, Option<Duration>)>>,
        times: Mutex<Vec<Instant>>,
    }

    impl Attempts for Script {
        async fn attempt(&self, _row: &OutboxRow, _n: u32) -> AttemptReport {
            self.times.lock().unwrap().push(Instant::now());
            let (class, retry_after) = self.answers.lock().unwrap().remove(0);
            AttemptReport { class, started_at: Timestamp::now(), duration: Duration::ZERO, retry_after }
        }
    }

    #[derive(Default)]
    struct Notes(Mutex<Vec<(u32, String)>>);

    impl Journal for Notes {
        fn claim(&self, row: &OutboxRow) -> BoxFuture<'static, Option<ClaimOutcome>> {
            let claim = runhook_store::Claim { token: ClaimToken::new(), until: Timestamp::now() };
            let attempts = row.attempts;
            Box::pin(async move { Some(ClaimOutcome::Claimed { claim, attempts }) })
        }

        fn record(
            &self,
            _row: &OutboxRow,
            _claim: ClaimToken,
            n: u32,
            report: &AttemptReport,
            _: DeliveryStatus,
        ) -> BoxFuture<'static, bool> {
            self.0.lock().unwrap().push((n, report.class.label().into()));
            Box::pin(async { true })
        }
    }

    fn row() -> OutboxRow {
        let target = WebhookTarget::new("http://receiver.invalid/");
        OutboxRow::queued(RuleId::new_v4(), &target, "{}".into(), vec![])
    }

    async fn run(
        answers: Vec<(AttemptClass, Option<Duration>)>,
    ) -> (DeliveryOutcome, Vec<Duration>, Vec<(u32, String)>) {
        let script = Script { answers: Mutex::new(answers), times: Mutex::new(vec![]) };
        let notes = Notes::default();
        let outcome = drive(
            &script,
            &notes,
            &DeliverySettings::default(),
            row(),
            &CancellationToken::new(),
            SlotGuard::untracked(),
        )
        .await;
        let times = script.times.into_inner().unwrap();
        let gaps = times.windows(2).map(|w| w[1] - w[0]).collect();
        (outcome, gaps, notes.0.into_inner().unwrap())
    }

    #[tokio::test(start_paused = true)]
    async fn backs_off_exponentially_with_bounded_jitter() {
        let (outcome, gaps, notes) = run(vec![
            (AttemptClass::ServerError(500), None),
            (AttemptClass::ServerError(502), None),
            (AttemptClass::ServerError(500), None),
        ])
        .await;
        assert_eq!(outcome, DeliveryOutcome::Failed);
        assert_eq!(notes.len(), 3);
        assert!(gaps[0] >= Duration::from_millis(500) && gaps[0] <= Duration::from_millis(625), "{gaps:?}");
        assert!(gaps[1] >= Duration::from_millis(1000) && gaps[1] <= Duration::from_millis(1250), "{gaps:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn honours_retry_after_and_stops_at_success() {
        let (outcome, gaps, notes) = run(vec![
            (AttemptClass::ServerError(503), Some(Duration::from_secs(3))),
            (AttemptClass::Transport("connection reset".into()), None),
            (AttemptClass::Success(200), None),
        ])
        .await;
        assert_eq!(outcome, DeliveryOutcome::Delivered);
        assert_eq!(notes, vec![(1, "server_error".into()), (2, "transport".into()), (3, "success".into())]);
        assert!(gaps[0] >= Duration::from_secs(3) && gaps[0] < Duration::from_millis(3100), "{gaps:?}");
        assert!(gaps[1] >= Duration::from_millis(1000) && gaps[1] <= Duration::from_millis(1250), "{gaps:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn does_not_retry_4xx_timeouts_or_redirects() {
        for class in [AttemptClass::ClientError(404), AttemptClass::Timeout, AttemptClass::Redirect(302)] {
            let (outcome, gaps, notes) = run(vec![(class, None)]).await;
            assert_eq!(outcome, DeliveryOutcome::Failed);
            assert!(gaps.is_empty());
            assert_eq!(notes.len(), 1);
        }
    }
}
