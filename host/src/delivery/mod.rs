//! Webhook delivery: drains the outbox the rule engine fills, under the
//! documented policy, at least once.
//!
//! - [`policy`]: how an attempt is classified and what follows it (pure).
//! - [`send`]: one HTTP attempt (deadline, signing, ignored body).
//! - [`guard`]: SSRF protection on the addresses actually connected to.
//! - [`drive`]: one delivery from attempt to outcome, recording each attempt.
//! - this file: the worker that claims due rows and bounds concurrency, in
//!   total and per endpoint, so one slow receiver cannot starve the others.
//!
//! Rows stay `pending` until an outcome is recorded, so a crash re-sends
//! them after restart with the same `webhook-id`.
//!
//! Layering: layer 2; imports `model`, `config`, `store`.

pub mod drive;
pub mod guard;
pub mod policy;
pub mod send;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub use drive::{DeliveryOutcome, drive};
pub use guard::NetworkGuard;
pub use policy::AttemptClass;
pub use send::{AttemptReport, Sender, sign};

use crate::config::DeliverySettings;
use crate::model::{DeliveryId, Timestamp};
use crate::store::Store;

/// How often the outbox is polled when nothing finished meanwhile.
const POLL: Duration = Duration::from_millis(100);

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
    let mut in_flight: JoinSet<(DeliveryId, String)> = JoinSet::new();
    let mut busy_ids: HashSet<DeliveryId> = HashSet::new();
    let mut per_endpoint: HashMap<String, usize> = HashMap::new();
    loop {
        while let Some(done) = in_flight.try_join_next() {
            release(done, &mut busy_ids, &mut per_endpoint);
        }
        let room = settings.concurrency.saturating_sub(in_flight.len());
        if room > 0 {
            let full: Vec<String> = per_endpoint
                .iter()
                .filter(|(_, n)| **n >= settings.per_endpoint_concurrency)
                .map(|(e, _)| e.clone())
                .collect();
            match store.due_deliveries(Timestamp::now(), room + busy_ids.len(), &full).await {
                Ok(rows) => {
                    for row in rows {
                        if busy_ids.contains(&row.id) {
                            continue;
                        }
                        let endpoint = row.endpoint();
                        let count = per_endpoint.entry(endpoint.clone()).or_default();
                        if *count >= settings.per_endpoint_concurrency || in_flight.len() >= settings.concurrency {
                            continue;
                        }
                        *count += 1;
                        busy_ids.insert(row.id);
                        let (store, sender, settings, stop) =
                            (store.clone(), sender.clone(), settings.clone(), shutdown.clone());
                        in_flight.spawn(async move {
                            let id = row.id;
                            drive(&sender, &store, &settings, row, &stop).await;
                            (id, endpoint)
                        });
                    }
                }
                Err(e) => tracing::error!(error = %e, "cannot read the outbox"),
            }
        }
        metrics::gauge!("runhook_deliveries_in_flight").set(in_flight.len() as f64);
        tokio::select! {
            _ = shutdown.cancelled() => break,
            Some(done) = in_flight.join_next(), if !in_flight.is_empty() => {
                if let Ok(done) = done {
                    release(Ok(done), &mut busy_ids, &mut per_endpoint);
                }
            }
            _ = tokio::time::sleep(POLL) => {}
        }
    }
    while in_flight.join_next().await.is_some() {}
}

fn release(
    done: Result<(DeliveryId, String), tokio::task::JoinError>,
    busy_ids: &mut HashSet<DeliveryId>,
    per_endpoint: &mut HashMap<String, usize>,
) {
    let Ok((id, endpoint)) = done else { return };
    busy_ids.remove(&id);
    if let Some(n) = per_endpoint.get_mut(&endpoint) {
        *n -= 1;
        if *n == 0 {
            per_endpoint.remove(&endpoint);
        }
    }
}
