//! Webhook delivery: drains the outbox the rule engine fills, under the
//! documented policy, at least once.
//!
//! - [`policy`]: how an attempt is classified and what follows it (pure).
//! - [`send`]: one HTTP attempt (deadline, signing, ignored body).
//! - [`guard`]: SSRF protection on the addresses actually connected to.
//! - [`drive`](mod@drive): one delivery from attempt to outcome, recording each attempt.
//! - [`journal`]: records attempts in the store, committed in groups.
//! - [`retention`]: deletes finished deliveries past the retention period.
//! - `slots`: the concurrency bounds, and the rows read waiting for a slot.
//! - this file: the worker that claims due rows and bounds concurrency, in
//!   total and per endpoint, so one slow receiver cannot starve the others.
//!
//! Rows stay `pending` until an outcome is recorded, so a crash re-sends
//! them after restart with the same `webhook-id`.
//!
//! The worker reads the outbox when the store's [`OutboxBell`](runhook_store::OutboxBell) rings
//! (a cycle queued deliveries, one was redelivered), when slots free up
//! and its read rows run low, and every `poll_interval` otherwise.
//!
//! Layering: layer 2; imports `model`, `config`, `store`.

pub mod drive;
pub mod guard;
pub mod journal;
pub mod policy;
pub mod retention;
pub mod send;
mod slots;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use drive::{DeliveryOutcome, SlotGuard, drive};
pub use guard::NetworkGuard;
pub use journal::{ClaimPolicy, StoreJournal};
pub use policy::AttemptClass;
pub use send::{AttemptReport, Sender, reserved_header, sign};

use crate::config::DeliverySettings;
use runhook_core::model::{DeliveryId, Timestamp};
use runhook_store::{DueCursor, DuePage, DueQuery, OutboxStore};
use slots::{Ready, Slots};

/// Due rows read from the outbox at once; they wait in memory for a slot.
const BATCH: usize = 256;
/// Rows read longer ago than this are read again rather than sent, so a
/// rule deleted meanwhile does not deliver.
const STALE: Duration = Duration::from_secs(2);

/// One background read of the outbox, and the ids it was told to skip.
struct Fetched {
    page: Result<DuePage, runhook_store::StoreError>,
    skip: HashSet<DeliveryId>,
    top_up: bool,
}

/// Runs the delivery worker until `shutdown`, then lets attempts in flight
/// finish and record (retry waits are cut short; their rows stay due).
pub async fn run(store: Arc<dyn OutboxStore>, settings: DeliverySettings, shutdown: CancellationToken) {
    let sender = match Sender::new(&settings) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot build the HTTP client; webhooks will not be delivered");
            return;
        }
    };
    let settings = Arc::new(settings);
    let mut slots = Slots::new(settings.concurrency, settings.per_endpoint_concurrency);
    let (freed_tx, mut freed) = tokio::sync::mpsc::unbounded_channel::<drive::Freed>();
    let (journal, journal_task) = StoreJournal::spawn(store.clone(), ClaimPolicy::of(&settings));
    // Deliveries' tasks, awaited at shutdown. The worker is not woken when
    // one ends: a task leaves the in-flight set itself.
    let tasks = TaskTracker::new();
    let in_flight_gauge = metrics::gauge!("runhook_deliveries_in_flight");
    // Wakes the loop to look at the outbox again when nothing else did.
    let every = settings.poll_interval;
    let poll = tokio::time::sleep(every);
    tokio::pin!(poll);
    let mut ready = Ready::default();
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
        while let Ok((endpoint, busy)) = freed.try_recv() {
            slots.free(&endpoint, busy.then(|| Instant::now() + every));
        }
        ready.drop_stale(STALE);
        if fetch.is_none() {
            let startable = ready.any_startable(&slots);
            let polled_long_ago = last_fetch.is_none_or(|t| t.elapsed() >= every);
            // Top up below half a batch (at once while the outbox has more);
            // when nothing read can start, look for other endpoints' rows.
            let top_up = ready.len() < BATCH / 2 && (more || polled_long_ago);
            let other_endpoints = slots.room() > 0 && !startable && polled_long_ago;
            if top_up || other_endpoints {
                last_fetch = Some(Instant::now());
                let skip: HashSet<DeliveryId> = ready.ids().chain(slots.in_flight.lock().iter().copied()).collect();
                let query = if top_up {
                    DueQuery { now: Timestamp::now(), limit: BATCH, busy: Vec::new(), after: cursor }
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
        // Start what fits, each endpoint within its bound.
        for (row, endpoint, started) in ready.start(&mut slots) {
            let (journal, sender, settings, stop) =
                (journal.clone(), sender.clone(), settings.clone(), shutdown.clone());
            let slot = SlotGuard::new(freed_tx.clone(), endpoint);
            tasks.spawn(async move {
                drive(&sender, &journal, &settings, row, &stop, slot).await;
                drop(started);
            });
        }
        in_flight_gauge.set(slots.sending() as f64);
        tokio::select! {
            _ = shutdown.cancelled() => break,
            Some((endpoint, busy)) = freed.recv() => slots.free(&endpoint, busy.then(|| Instant::now() + every)),
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
                        let in_flight = slots.in_flight.lock();
                        for (row, endpoint) in rows {
                            if !skip.contains(&row.id) && !in_flight.contains(&row.id) {
                                ready.push(row, endpoint, now);
                            }
                        }
                    }
                    Ok(Fetched { page: Err(e), .. }) => tracing::error!(error = %e, "cannot read the outbox"),
                    Err(e) => tracing::error!(error = %e, "the outbox reader failed"),
                }
            }
            // Deliveries queued or redelivered: read the outbox again now
            // (after the read in progress, which may have missed them).
            _ = store.outbox_bell().rung() => last_fetch = None,
            _ = &mut poll => poll.as_mut().reset(tokio::time::Instant::now() + every),
        }
    }
    if let Some(f) = fetch {
        f.abort();
    }
    tasks.close();
    tasks.wait().await;
    // The last attempts are committed before the worker ends.
    drop(journal);
    let _ = journal_task.await;
}
