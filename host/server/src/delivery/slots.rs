//! The worker's concurrency bounds ([`Slots`]: in total and per endpoint)
//! and the due deliveries read from the outbox waiting for a slot
//! ([`Ready`], queued per endpoint).
//!
//! The worker reads the outbox a page at a time and starts deliveries as
//! slots free up, at each event. Queued per endpoint, an event costs a look
//! at the endpoints, not at every row read: with a page of one busy
//! endpoint's rows waiting, scanning the rows at each event cost more than
//! the HTTP requests they were waiting for.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use runhook_core::model::DeliveryId;
use runhook_store::OutboxRow;

/// The deliveries started and not yet recorded to their end, shared with
/// their tasks: the worker adds each one it starts, and the task's
/// [`Started`] removes it when the task ends, so the worker is not woken
/// for it. Rows read meanwhile are checked against it and not taken twice.
#[derive(Debug, Clone, Default)]
pub(super) struct InFlight(Arc<Mutex<HashSet<DeliveryId>>>);

impl InFlight {
    /// The set, for a few reads or changes in a row.
    pub(super) fn lock(&self) -> MutexGuard<'_, HashSet<DeliveryId>> {
        // Nothing panics while holding it; a set left by a panic is whole.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A started delivery's place in [`InFlight`], given up when dropped (also
/// when its task panics, so the row is read again rather than forgotten).
pub(super) struct Started {
    in_flight: InFlight,
    id: DeliveryId,
}

impl Drop for Started {
    fn drop(&mut self) {
        self.in_flight.lock().remove(&self.id);
    }
}

/// Deliveries in flight and the bounds they respect. A delivery holds a
/// slot of its endpoint while it may still make requests; after its last
/// attempt it frees the slot and only waits for its record to commit, and
/// its id stays in `in_flight` until then so it is not read again.
pub(super) struct Slots {
    total: usize,
    per_endpoint: usize,
    pub(super) in_flight: InFlight,
    sending: usize,
    by_endpoint: HashMap<String, usize>,
    /// Endpoints found at their limit across the cluster (other replicas
    /// send to them), left alone until the time given.
    cooling: HashMap<String, Instant>,
}

impl Slots {
    pub(super) fn new(total: usize, per_endpoint: usize) -> Self {
        Self {
            total,
            per_endpoint,
            in_flight: InFlight::default(),
            sending: 0,
            by_endpoint: HashMap::new(),
            cooling: HashMap::new(),
        }
    }

    /// Deliveries sending (holding a slot).
    pub(super) fn sending(&self) -> usize {
        self.sending
    }

    pub(super) fn room(&self) -> usize {
        self.total.saturating_sub(self.sending)
    }

    pub(super) fn endpoint_full(&self, endpoint: &str) -> bool {
        self.by_endpoint.get(endpoint).is_some_and(|n| *n >= self.per_endpoint)
            || self.cooling.get(endpoint).is_some_and(|until| *until > Instant::now())
    }

    pub(super) fn full_endpoints(&self) -> Vec<String> {
        let now = Instant::now();
        let full = self.by_endpoint.iter().filter(|(_, n)| **n >= self.per_endpoint).map(|(e, _)| e);
        let cooling = self.cooling.iter().filter(|(_, until)| **until > now).map(|(e, _)| e);
        let mut all: Vec<String> = full.chain(cooling).cloned().collect();
        all.sort_unstable();
        all.dedup();
        all
    }

    /// Takes a slot of `endpoint` for delivery `id`; the delivery stays in
    /// flight until the returned [`Started`] is dropped.
    pub(super) fn take(&mut self, id: DeliveryId, endpoint: &str) -> Started {
        self.in_flight.lock().insert(id);
        self.sending += 1;
        match self.by_endpoint.get_mut(endpoint) {
            Some(n) => *n += 1,
            None => {
                self.by_endpoint.insert(endpoint.to_string(), 1);
            }
        }
        Started { in_flight: self.in_flight.clone(), id }
    }

    /// Frees a slot of `endpoint`; with `cool_until`, the endpoint was at
    /// its limit across the cluster and is left alone until then.
    pub(super) fn free(&mut self, endpoint: &str, cool_until: Option<Instant>) {
        let now = Instant::now();
        self.cooling.retain(|_, until| *until > now);
        if let Some(until) = cool_until {
            self.cooling.insert(endpoint.to_string(), until);
        }
        self.sending = self.sending.saturating_sub(1);
        if let Some(n) = self.by_endpoint.get_mut(endpoint) {
            *n -= 1;
            if *n == 0 {
                self.by_endpoint.remove(endpoint);
            }
        }
    }
}

/// Rows read, per endpoint, each queue oldest first.
#[derive(Debug, Default)]
pub(super) struct Ready {
    by_endpoint: HashMap<String, VecDeque<(OutboxRow, Instant)>>,
    len: usize,
}

impl Ready {
    /// Rows waiting.
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// Queues `row`, read at `at` (rows are pushed in the order read).
    pub(super) fn push(&mut self, row: OutboxRow, endpoint: String, at: Instant) {
        self.by_endpoint.entry(endpoint).or_default().push_back((row, at));
        self.len += 1;
    }

    /// Drops rows read `stale` ago or longer: they are read again rather
    /// than sent, so a rule deleted meanwhile does not deliver.
    pub(super) fn drop_stale(&mut self, stale: Duration) {
        let mut dropped = 0;
        self.by_endpoint.retain(|_, queue| {
            while queue.front().is_some_and(|(_, at)| at.elapsed() >= stale) {
                queue.pop_front();
                dropped += 1;
            }
            !queue.is_empty()
        });
        self.len -= dropped;
    }

    /// The ids of every row waiting.
    pub(super) fn ids(&self) -> impl Iterator<Item = DeliveryId> + '_ {
        self.by_endpoint.values().flatten().map(|(r, _)| r.id)
    }

    /// Whether a row waits whose endpoint has a free slot.
    pub(super) fn any_startable(&self, slots: &Slots) -> bool {
        self.by_endpoint.keys().any(|e| !slots.endpoint_full(e))
    }

    /// Takes slots for as many rows as the bounds allow, one row of each
    /// endpoint in turn, and returns them with their endpoints.
    pub(super) fn start(&mut self, slots: &mut Slots) -> Vec<(OutboxRow, String, Started)> {
        let mut started = Vec::new();
        let mut endpoints: Vec<String> = self.by_endpoint.keys().cloned().collect();
        while !endpoints.is_empty() && slots.room() > 0 {
            let mut next = Vec::with_capacity(endpoints.len());
            for endpoint in endpoints {
                if slots.room() == 0 || slots.endpoint_full(&endpoint) {
                    continue;
                }
                let Some(queue) = self.by_endpoint.get_mut(&endpoint) else { continue };
                let Some((row, _)) = queue.pop_front() else { continue };
                self.len -= 1;
                if queue.is_empty() {
                    self.by_endpoint.remove(&endpoint);
                } else {
                    next.push(endpoint.clone());
                }
                let started_row = slots.take(row.id, &endpoint);
                started.push((row, endpoint, started_row));
            }
            endpoints = next;
        }
        started
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use runhook_core::model::{RuleId, WebhookTarget};

    fn row() -> OutboxRow {
        let target = WebhookTarget::new("https://hooks.example.com/x");
        OutboxRow::queued(RuleId::new_v4(), &target, "{}".into(), vec![])
    }

    #[test]
    fn starts_rows_in_order_within_each_endpoints_bound() {
        let (mut ready, mut slots) = (Ready::default(), Slots::new(10, 2));
        let now = Instant::now();
        let a: Vec<OutboxRow> = (0..5).map(|_| row()).collect();
        for r in &a {
            ready.push(r.clone(), "a".into(), now);
        }
        for _ in 0..3 {
            ready.push(row(), "b".into(), now);
        }
        // b is at its bound already.
        let _b1 = slots.take(DeliveryId::new_v7(), "b");
        let _b2 = slots.take(DeliveryId::new_v7(), "b");
        let started = ready.start(&mut slots);
        assert_eq!(started.iter().map(|(r, _, _)| r.id).collect::<Vec<_>>(), [a[0].id, a[1].id]);
        assert_eq!(slots.in_flight.lock().len(), 4);
        assert_eq!((ready.len(), slots.sending()), (6, 4));
        assert!(!ready.any_startable(&slots));
        assert_eq!(ready.ids().count(), 6);
        // A freed slot of b lets one b row start.
        slots.free("b", None);
        assert!(ready.any_startable(&slots));
        let b = ready.start(&mut slots);
        assert_eq!((b.len(), slots.in_flight.lock().len()), (1, 5));
        // A delivery leaves the in-flight set when its task lets go of it.
        drop(started);
        assert_eq!(slots.in_flight.lock().len(), 3);
    }

    #[test]
    fn stops_when_the_total_is_used_sharing_it_between_endpoints() {
        let (mut ready, mut slots) = (Ready::default(), Slots::new(5, 8));
        for e in ["a", "b", "c"] {
            for _ in 0..4 {
                ready.push(row(), e.into(), Instant::now());
            }
        }
        let started = ready.start(&mut slots);
        assert_eq!((started.len(), ready.len(), slots.room()), (5, 7, 0));
        for e in ["a", "b", "c"] {
            assert!(started.iter().any(|(_, s, _)| s == e), "endpoint {e} got no slot");
        }
    }

    #[test]
    fn drops_stale_rows_only() {
        let (mut ready, slots) = (Ready::default(), Slots::new(10, 2));
        let old = Instant::now().checked_sub(Duration::from_secs(10)).unwrap();
        ready.push(row(), "a".into(), old);
        ready.push(row(), "a".into(), Instant::now());
        ready.push(row(), "b".into(), old);
        ready.drop_stale(Duration::from_secs(2));
        assert_eq!(ready.len(), 1);
        assert_eq!(ready.ids().count(), 1);
        assert!(ready.any_startable(&slots));
    }
}
