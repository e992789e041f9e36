//! The outbox: webhook deliveries, their attempts, and the queries the
//! delivery worker and the deliveries API make.
//!
//! [`OutboxStore`] is the concern. A delivery is created by a rule cycle
//! (in the cycle's transaction), is `pending` until an attempt succeeds
//! (`delivered`) or the policy gives up (`failed`), and can be put back to
//! `pending` by a redelivery. Every attempt is kept. URLs, headers and
//! signing secrets are plain here; the store seals them before they reach
//! the database. Where a redelivery goes is decided once, in
//! [`redelivery_target`].

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::Serialize;
use sha2::Digest;

use runhook_core::model::{ActionOutcome, DeliveryId, RuleId, RuleSpec, RunId, Timestamp, WebhookId, WebhookTarget};

use crate::StoreError;
use crate::claim::{ClaimOutcome, ClaimTerms, ClaimToken};
use crate::sealed::Target;

/// Webhook deliveries: the worker's queue and the deliveries API's reads.
#[async_trait]
pub trait OutboxStore: Send + Sync + std::fmt::Debug {
    /// Rung after every commit that makes deliveries due now (a cycle's
    /// outbox rows, a redelivery).
    fn outbox_bell(&self) -> &OutboxBell;

    /// Pending deliveries due by `query.now`, oldest first (see [`DueQuery`]).
    async fn due_deliveries(&self, query: &DueQuery) -> Result<DuePage, StoreError>;

    /// Claims deliveries for an attempt each, in one transaction (see
    /// [`Claim`](crate::Claim)): a pending delivery that is due and holds no live claim
    /// is claimed, unless its endpoint already has `terms.per_endpoint`
    /// live claims (then it is `Busy`); one whose claim expired first gets
    /// its interrupted attempt recorded, and is given up when that reaches
    /// `terms.give_up_after` attempts. One outcome per id, in order.
    async fn claim_deliveries(&self, ids: &[DeliveryId], terms: &ClaimTerms) -> Result<Vec<ClaimOutcome>, StoreError> {
        Ok(self.record_and_claim(&[], ids, terms).await?.1)
    }

    /// Records attempts, each with the delivery's state after it, in one
    /// transaction (the delivery worker commits them in groups); a final
    /// state also lands in the rule log of the runs carried. A record is
    /// kept only under its delivery's live claim (its token matches), and
    /// clears the claim; the ids of the records refused are returned
    /// (their delivery was claimed by another worker, deleted or finished).
    async fn record_deliveries(&self, batch: &[DeliveryRecord]) -> Result<Vec<DeliveryId>, StoreError> {
        let terms = ClaimTerms {
            now: runhook_core::model::Timestamp::now(),
            lease: std::time::Duration::ZERO,
            give_up_after: 0,
            per_endpoint: u32::MAX,
        };
        Ok(self.record_and_claim(batch, &[], &terms).await?.0)
    }

    /// [`OutboxStore::record_deliveries`], then [`OutboxStore::claim_deliveries`],
    /// in one transaction, as the delivery worker's group commit makes them
    /// (each delivery waiting for a claim is waiting to send, so a group is
    /// committed at once, and one commit costs less than two). Either list
    /// may be empty; the two methods above are this with the other empty.
    async fn record_and_claim(
        &self,
        records: &[DeliveryRecord],
        claims: &[DeliveryId],
        terms: &ClaimTerms,
    ) -> Result<(Vec<DeliveryId>, Vec<ClaimOutcome>), StoreError>;

    /// Deliveries, newest first, with their attempts.
    async fn list_deliveries(&self, query: &DeliveryQuery) -> Result<Vec<Delivery>, StoreError>;

    /// How many deliveries `query` selects, whatever its page.
    async fn count_deliveries(&self, query: &DeliveryQuery) -> Result<u64, StoreError>;

    /// One delivery with its attempts.
    async fn get_delivery(&self, id: DeliveryId) -> Result<Option<Delivery>, StoreError>;

    /// Puts a finished delivery back in the queue, due now, keeping its id
    /// (so receivers deduplicate it) and its history, to the target
    /// [`redelivery_target`] chooses. `Ok(false)` when it is unknown;
    /// `Conflict` when it is still pending or its rule was deleted.
    async fn redeliver(&self, id: DeliveryId) -> Result<bool, StoreError>;

    /// Puts every finished delivery `which` selects back in the queue, as
    /// [`OutboxStore::redeliver`] does one, in one transaction; returns how many.
    async fn redeliver_matching(&self, which: &Redelivery) -> Result<usize, StoreError>;

    /// Deletes up to `limit` deliveries that were queued and finished
    /// (delivered or failed) before `before`: payload, state and attempts.
    /// Pending deliveries are never deleted. Returns how many were.
    async fn prune_deliveries(&self, before: Timestamp, limit: usize) -> Result<usize, StoreError>;

    /// Undelivered webhooks: how many, and when the oldest was queued.
    async fn outbox_stats(&self) -> Result<(i64, Option<Timestamp>), StoreError>;
}

/// Attempts one delivery may accumulate: a delivery with this many is not
/// redelivered (singly or in bulk), so its history stays bounded. A
/// redelivery adds at most 1 + the policy's retries.
pub const MAX_ATTEMPTS_PER_DELIVERY: usize = 100;

/// Where a finished delivery goes when it is queued again, and with which
/// secrets: to its webhook as the rule has it now when that webhook is
/// known (the one with the id it was queued for; for a delivery without
/// one, the rule's only webhook or the one with the URL it was sent to),
/// so a corrected URL or a changed header takes effect; otherwise to the
/// URL and headers it was sent to. It is signed with the rule's current
/// secrets (`signing_secrets` at `now`): a secret replaced since it was
/// queued would no longer verify.
pub fn redelivery_target(spec: &RuleSpec, webhook: Option<WebhookId>, sent: &Target, now: Timestamp) -> Target {
    let webhook = match (webhook, spec.webhooks.as_slice()) {
        (Some(id), all) => all.iter().find(|w| w.id == Some(id)),
        (None, [only]) => Some(only),
        (None, all) => all.iter().find(|w| w.url == sent.url),
    };
    let (url, headers) = match webhook {
        Some(w) => (w.url.clone(), w.headers.clone().unwrap_or_default()),
        None => (sent.url.clone(), sent.headers.clone()),
    };
    Target { url, headers, secret: join_secrets(&spec.signing_secrets(now)) }
}

/// A delivery's signing secrets as one text, separated by spaces (a
/// `whsec_` secret holds none), as a [`Target`] carries them.
pub fn join_secrets(secrets: &[String]) -> Option<String> {
    (!secrets.is_empty()).then(|| secrets.join(" "))
}

/// The secrets [`join_secrets`] joined.
pub fn split_secrets(joined: Option<&str>) -> Vec<String> {
    joined.map(|s| s.split_whitespace().map(str::to_string).collect()).unwrap_or_default()
}

/// Rung by the store when deliveries become due now (a cycle queued them, or
/// one was redelivered), so the delivery worker starts them at once rather
/// than at its next poll. A ring nobody waits for is kept until the next
/// wait, so none is lost between two. It only reaches this process: the
/// worker's poll still finds what other processes queue.
#[derive(Debug, Default)]
pub struct OutboxBell(tokio::sync::Notify);

impl OutboxBell {
    /// Announces deliveries due now.
    pub fn ring(&self) {
        self.0.notify_one();
    }

    /// Waits for the next ring (or returns at once for one not yet heard).
    pub async fn rung(&self) {
        self.0.notified().await;
    }
}

/// A webhook delivery waiting in (or done with) the outbox.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxRow {
    /// The delivery id (`webhook-id`).
    pub id: DeliveryId,
    /// The rule that produced it.
    pub rule_id: RuleId,
    /// Which of the rule's webhooks it goes to (none for deliveries queued
    /// before webhooks had ids).
    pub webhook_id: Option<WebhookId>,
    /// The target URL.
    pub url: String,
    /// Custom headers.
    pub headers: BTreeMap<String, String>,
    /// The JSON body.
    pub body: String,
    /// The runs it carries (to update their log lines).
    pub run_ids: Vec<RunId>,
    /// The secrets each attempt is signed with, one signature each (two
    /// while a replaced secret still signs); empty when the rule does not sign.
    pub signing_secrets: Vec<String>,
    /// When queued.
    pub created_at: Timestamp,
    /// Attempts made since it was queued (or redelivered).
    pub attempts: u32,
}

impl OutboxRow {
    /// A new delivery of `body` to `target` for `rule_id`, as a rule cycle
    /// queues it: a fresh id (its `webhook-id`), created now, no attempt
    /// made, no runs attached (set `run_ids` for the runs it carries).
    pub fn queued(rule_id: RuleId, target: &WebhookTarget, body: String, signing_secrets: Vec<String>) -> Self {
        Self {
            id: DeliveryId::new_v7(),
            rule_id,
            webhook_id: target.id,
            url: target.url.clone(),
            headers: target.headers.clone().unwrap_or_default(),
            body,
            run_ids: Vec::new(),
            signing_secrets,
            created_at: Timestamp::now(),
            attempts: 0,
        }
    }
}

/// A stable, non-reversible name of a URL's origin (scheme, host, port):
/// deliveries to one origin share a concurrency bound. Hashed so that the
/// database holds no part of the sealed URL in clear.
pub fn endpoint_key(url: &str) -> String {
    let origin = match url::Url::parse(url) {
        Ok(u) => format!("{}://{}:{}", u.scheme(), u.host_str().unwrap_or(""), u.port_or_known_default().unwrap_or(0)),
        Err(_) => url.to_string(),
    };
    hex::encode(&sha2::Sha256::digest(origin.as_bytes())[..8])
}

/// Which due deliveries the worker reads.
#[derive(Debug, Clone)]
pub struct DueQuery {
    /// Due by this time.
    pub now: Timestamp,
    /// At most this many.
    pub limit: usize,
    /// Not bound for these endpoints (see [`endpoint_key`]).
    pub busy: Vec<String>,
    /// After this position in due order (the previous page's end), so a
    /// worker with many deliveries in flight does not read them again.
    pub after: Option<DueCursor>,
}

/// A position in due order: (due time, id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DueCursor {
    /// The due time of the last delivery read.
    pub due: Timestamp,
    /// Its id.
    pub id: DeliveryId,
}

/// A page of due deliveries.
#[derive(Debug, Clone)]
pub struct DuePage {
    /// The deliveries, in due order, each with its endpoint (see [`endpoint_key`]).
    pub rows: Vec<(OutboxRow, String)>,
    /// Where the page ended.
    pub end: Option<DueCursor>,
}

/// The final or interim state of a delivery after an attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum DeliveryStatus {
    /// Delivered (2xx).
    Delivered,
    /// Given up; the message says why.
    Failed(String),
    /// Try again at this time.
    Retry {
        /// When.
        at: Timestamp,
        /// Why the last attempt failed.
        error: String,
    },
}

/// One HTTP attempt of a delivery, as recorded.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AttemptRecord {
    /// Its number over the delivery's life, from 1 (filled in by the store).
    pub attempt: u32,
    /// When it started.
    pub started_at: Timestamp,
    /// How long it took, in milliseconds.
    pub duration_ms: u64,
    /// Its class: `success`, `server_error`, `client_error`, `redirect`,
    /// `timeout`, `transport`, `forbidden`, or `interrupted` (the worker
    /// stopped during it; see [`Claim`](crate::Claim)).
    pub class: String,
    /// The HTTP status, when a response arrived.
    pub status_code: Option<u16>,
    /// What went wrong, when something did.
    pub error: Option<String>,
}

/// One attempt to record, and the state it leaves its delivery in.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryRecord {
    /// The delivery.
    pub id: DeliveryId,
    /// The claim the attempt was made under.
    pub claim: ClaimToken,
    /// Its rule (whose log gets the outcome).
    pub rule_id: RuleId,
    /// The runs it carries (their log lines get the outcome).
    pub run_ids: Vec<RunId>,
    /// Attempts made since queued or redelivered, this one included.
    pub attempts: u32,
    /// The attempt.
    pub attempt: AttemptRecord,
    /// The delivery's state after it.
    pub status: DeliveryStatus,
}

impl DeliveryRecord {
    /// What the rule log of the carried runs says once the delivery is
    /// finished; `None` while it will be retried.
    pub fn log_outcome(&self) -> Option<ActionOutcome> {
        let (id, attempts) = (self.id, self.attempts);
        match &self.status {
            DeliveryStatus::Delivered => {
                Some(ActionOutcome::success(serde_json::json!({"delivery_id": id, "attempts": attempts})))
            }
            DeliveryStatus::Failed(msg) => Some(failed_outcome(id, attempts, msg)),
            DeliveryStatus::Retry { .. } => None,
        }
    }
}

/// What the rule log of the carried runs says of a delivery that failed.
pub fn failed_outcome(id: DeliveryId, attempts: u32, error: &str) -> ActionOutcome {
    ActionOutcome {
        outcome: "error".into(),
        payload: Some(serde_json::json!({"delivery_id": id, "attempts": attempts, "error": error})),
    }
}

/// How a delivery ended, for choosing finished ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finished {
    /// The policy gave up.
    Failed,
    /// A 2xx arrived.
    Delivered,
}

impl Finished {
    /// The status as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Failed => "failed",
            Self::Delivered => "delivered",
        }
    }
}

/// Which finished deliveries a bulk redelivery queues again: those of
/// `status` queued in [`since`, `until`), of one rule or all. Deliveries
/// of a deleted rule are not sent again.
#[derive(Debug, Clone, PartialEq)]
pub struct Redelivery {
    /// Only this rule's.
    pub rule: Option<RuleId>,
    /// Only those that ended so.
    pub status: Finished,
    /// Queued at or after this time.
    pub since: Timestamp,
    /// Queued before this time.
    pub until: Timestamp,
}

/// Which deliveries to list.
#[derive(Debug, Clone, Default)]
pub struct DeliveryQuery {
    /// Only this rule's.
    pub rule: Option<RuleId>,
    /// Only in this state (`pending`, `delivered`, `failed`).
    pub status: Option<String>,
    /// Only those queued at or after this time.
    pub since: Option<Timestamp>,
    /// Only those queued before this time.
    pub until: Option<Timestamp>,
    /// Page size.
    pub limit: usize,
    /// Page offset.
    pub offset: usize,
}

/// A delivery as the deliveries API shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    /// The delivery id (`webhook-id`).
    pub id: DeliveryId,
    /// The rule.
    pub rule_id: RuleId,
    /// The target URL (plain; the API masks it).
    pub url: String,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    /// Attempts since queued or redelivered.
    pub attempts: u32,
    /// The runs carried.
    pub run_ids: Vec<RunId>,
    /// When queued.
    pub created_at: Timestamp,
    /// When the next attempt is due (pending only).
    pub next_attempt_at: Option<Timestamp>,
    /// When it was delivered or given up.
    pub finished_at: Option<Timestamp>,
    /// The last attempt's error.
    pub last_error: Option<String>,
    /// Every attempt, oldest first.
    pub history: Vec<AttemptRecord>,
}
