//! Webhook delivery: drains the outbox the rule engine fills, under the
//! documented policy, at least once.
//!
//! - [`policy`]: how an attempt is classified and what follows it (pure).
//! - [`send`]: one HTTP attempt (deadline, signing, ignored body).
//! - [`guard`]: SSRF protection on the addresses actually connected to.
//! - [`drive`]: one delivery from attempt to outcome, recording each attempt.
//! - [`journal`]: records attempts in the store, committed in groups.
//! - this file: the worker that claims due rows and bounds concurrency, in
//!   total and per endpoint, so one slow receiver cannot starve the others.
//!
//! Rows stay `pending` until an outcome is recorded, so a crash re-sends
//! them after restart with the same `webhook-id`.
//!
//! Layering: layer 2; imports `model`, `config`, `store`.

pub mod drive;
pub mod guard;
pub mod journal;
pub mod policy;
pub mod send;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub use drive::{DeliveryOutcome, SlotGuard, drive};
pub use guard::NetworkGuard;
pub use journal::StoreJournal;
pub use policy::AttemptClass;
pub use send::{AttemptReport, Sender, sign};

use crate::config::DeliverySettings;
use crate::model::{DeliveryId, Timestamp};
use crate::store::{DueCursor, DuePage, DueQuery, OutboxRow, Store};

/// How often the outbox is polled when nothing finished meanwhile.
const POLL: Duration = Duration::from_millis(100);
/// Due rows read from the outbox at once; they wait in memory for a slot.
const BATCH: usize = 256;
/// Rows read longer ago than this are read again rather than sent, so a
/// rule deleted meanwhile does not deliver.
const STALE: Duration = Duration::from_secs(2);

/// One background read of the outbox, and the ids it was told to skip.
struct Fetched {
    page: Result<DuePage, crate::store::StoreError>,
    skip: HashSet<DeliveryId>,
    top_up: bool,
}

/// Deliveries in flight and the bounds they respect. A delivery holds a
/// slot of its endpoint while it may still make requests; after its last
/// attempt it frees the slot and only waits for its record to commit, and
/// its id stays in `in_flight` until then so it is not read again.
struct Slots {
    total: usize,
    per_endpoint: usize,
    in_flight: HashSet<DeliveryId>,
    sending: usize,
    by_endpoint: HashMap<String, usize>,
}

impl Slots {
    fn room(&self) -> usize {
        self.total.saturating_sub(self.sending)
    }

    fn endpoint_full(&self, endpoint: &str) -> bool {
        self.by_endpoint.get(endpoint).is_some_and(|n| *n >= self.per_endpoint)
    }

    fn full_endpoints(&self) -> Vec<String> {
        self.by_endpoint.iter().filter(|(_, n)| **n >= self.per_endpoint).map(|(e, _)| e.clone()).collect()
    }

    fn take(&mut self, id: DeliveryId, endpoint: &str) {
        self.in_flight.insert(id);
        self.sending += 1;
        *self.by_endpoint.entry(endpoint.to_string()).or_default() += 1;
    }

    fn free(&mut self, endpoint: &str) {
        self.sending = self.sending.saturating_sub(1);
        if let Some(n) = self.by_endpoint.get_mut(endpoint) {
            *n -= 1;
            if *n == 0 {
                self.by_endpoint.remove(endpoint);
            }
        }
    }
}

/// Runs the delivery worker until `shutdown`, then lets attempts in flight
/// finish and record (retry waits are cut short; their rows stay due).
pub async fn run(store: Arc<dyn Store>, settings: DeliverySettings, shutdown: CancellationToken) {
    let sender = match Sender::new(&settings) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot build the HTTP client; webhooks will not be delivered");
            return;
        }
    };
    let settings = Arc::new(settings);
    let mut slots = Slots {
        total: settings.concurrency,
        per_endpoint: settings.per_endpoint_concurrency,
        in_flight: HashSet::new(),
        sending: 0,
        by_endpoint: HashMap::new(),
    };
    let (freed_tx, mut freed) = tokio::sync::mpsc::unbounded_channel::<String>();
    let (journal, journal_task) = StoreJournal::spawn(store.clone());
    let mut tasks: JoinSet<DeliveryId> = JoinSet::new();
    // Due rows read but not started: (row, endpoint, when read), oldest first.
    let mut ready: VecDeque<(OutboxRow, String, Instant)> = VecDeque::new();
    // The outbox is read in the background, so starting deliveries never
    // waits for a query.
    let mut fetch: Option<tokio::task::JoinHandle<Fetched>> = None;
    let mut last_fetch: Option<Instant> = None;
    let mut more = true;
    // Where the last top-up ended: the next one continues there instead of
    // reading the deliveries in flight again; it restarts from the
    // beginning once the outbox has been read to its end.
    let mut cursor: Option<DueCursor> = None;
    loop {
        while let Ok(endpoint) = freed.try_recv() {
            slots.free(&endpoint);
        }
        while let Some(done) = tasks.try_join_next() {
            if let Ok(id) = done {
                slots.in_flight.remove(&id);
            }
        }
        // Oldest first, so the stale ones are at the front.
        while ready.front().is_some_and(|(_, _, at)| at.elapsed() >= STALE) {
            ready.pop_front();
        }
        if fetch.is_none() {
            let startable = ready.iter().any(|(_, e, _)| !slots.endpoint_full(e));
            let polled_long_ago = last_fetch.is_none_or(|t| t.elapsed() >= POLL);
            // Top up below half a batch (at once while the outbox has more);
            // when nothing read can start, look for other endpoints' rows.
            let top_up = ready.len() < BATCH / 2 && (more || polled_long_ago);
            let other_endpoints = slots.room() > 0 && !startable && polled_long_ago;
            if top_up || other_endpoints {
                last_fetch = Some(Instant::now());
                let skip: HashSet<DeliveryId> =
                    ready.iter().map(|(r, _, _)| r.id).chain(slots.in_flight.iter().copied()).collect();
                let query = if top_up {
                    DueQuery { now: Timestamp::now(), limit: BATCH, busy: Vec::new(), after: cursor.clone() }
                } else {
                    let limit = BATCH + skip.len();
                    DueQuery { now: Timestamp::now(), limit, busy: slots.full_endpoints(), after: None }
                };
                let store = store.clone();
                fetch = Some(tokio::spawn(async move {
                    let page = store.due_deliveries(&query).await;
                    Fetched { page, skip, top_up }
                }));
            }
        }
        // Start what fits, oldest first, skipping endpoints at their bound.
        let mut i = 0;
        while slots.room() > 0 && i < ready.len() {
            if slots.endpoint_full(&ready[i].1) {
                i += 1;
                continue;
            }
            let Some((row, endpoint, _)) = ready.remove(i) else { break };
            slots.take(row.id, &endpoint);
            let (journal, sender, settings, stop) =
                (journal.clone(), sender.clone(), settings.clone(), shutdown.clone());
            let slot = SlotGuard::new(freed_tx.clone(), endpoint);
            tasks.spawn(async move {
                let id = row.id;
                drive(&sender, &journal, &settings, row, &stop, slot).await;
                id
            });
        }
        metrics::gauge!("runhook_deliveries_in_flight").set(slots.sending as f64);
        tokio::select! {
            _ = shutdown.cancelled() => break,
            Some(endpoint) = freed.recv() => slots.free(&endpoint),
            Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                if let Ok(id) = done {
                    slots.in_flight.remove(&id);
                }
            }
            fetched = async { fetch.as_mut().expect("guarded by the condition").await }, if fetch.is_some() => {
                fetch = None;
                match fetched {
                    Ok(Fetched { page: Ok(DuePage { rows, end }), skip, top_up }) => {
                        if top_up {
                            more = rows.len() >= BATCH;
                            cursor = if more { end } else { None };
                        }
                        let now = Instant::now();
                        // Rows started or finished while the query ran are not taken again.
                        ready.extend(
                            rows.into_iter()
                                .filter(|(r, _)| !skip.contains(&r.id) && !slots.in_flight.contains(&r.id))
                                .map(|(r, e)| (r, e, now)),
                        );
                    }
                    Ok(Fetched { page: Err(e), .. }) => tracing::error!(error = %e, "cannot read the outbox"),
                    Err(e) => tracing::error!(error = %e, "the outbox reader failed"),
                }
            }
            _ = tokio::time::sleep(POLL) => {}
        }
    }
    if let Some(f) = fetch {
        f.abort();
    }
    while tasks.join_next().await.is_some() {}
    // The last attempts are committed before the worker ends.
    drop(journal);
    let _ = journal_task.await;
}
