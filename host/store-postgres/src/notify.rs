//! Wake-ups between replicas: LISTEN/NOTIFY.
//!
//! Two channels. `runhook_outbox` is notified by a transaction that queued
//! deliveries (a cycle's commit, a redelivery), never by ingest: NOTIFY
//! takes a lock at commit that every notifying transaction shares, so it
//! is sent only where a worker has something to do. `runhook_rules`
//! carries the API's announcements (rules changed, a rule triggered) to
//! whichever replica holds the rule. Notifications are sent inside the
//! transaction, so they arrive only if it commits.
//!
//! Each store listens on one connection of its own and rings the
//! process's outbox bell and rule signals. A notification is a hint: while
//! the listening connection is down (sqlx's listener drops what arrives
//! while it reconnects) the delivery worker's poll and the scheduler's
//! tick still find the work, and on reconnecting the store rings both
//! once, so they look at once.

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgListener;

use runhook_core::model::signals::RuleSignals;
use runhook_store::{Announcement, OutboxBell};

/// Deliveries were queued.
pub(crate) const OUTBOX: &str = "runhook_outbox";
/// An [`Announcement`] (its text as the payload).
pub(crate) const RULES: &str = "runhook_rules";

/// Held by every clone of a store: when the last is dropped, its listener
/// stops (and releases its connection).
#[derive(Debug)]
pub(crate) struct Listening(#[allow(dead_code)] tokio::sync::oneshot::Sender<()>);

/// Starts listening for `pool`'s store; it listens until the returned
/// guard is dropped.
pub(crate) fn start(pool: PgPool, bell: Arc<OutboxBell>, signals: Arc<RuleSignals>) -> Listening {
    let (guard, dropped) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        tokio::select! {
            _ = dropped => {}
            () = listen(pool, bell, signals) => {}
        }
    });
    Listening(guard)
}

/// Listens, reconnecting after a second when the connection is lost.
async fn listen(pool: PgPool, bell: Arc<OutboxBell>, signals: Arc<RuleSignals>) {
    loop {
        match PgListener::connect_with(&pool).await {
            Ok(mut listener) => match listener.listen_all([OUTBOX, RULES]).await {
                Ok(()) => {
                    bell.ring();
                    signals.rules_changed();
                    relay(&mut listener, &bell, &signals).await;
                }
                Err(e) => warn("cannot listen for notifications", &e),
            },
            Err(e) => warn("cannot connect to listen for notifications", &e),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Rings for each notification until the connection is lost.
async fn relay(listener: &mut PgListener, bell: &OutboxBell, signals: &RuleSignals) {
    loop {
        match listener.try_recv().await {
            Ok(Some(n)) if n.channel() == OUTBOX => bell.ring(),
            Ok(Some(n)) => {
                if let Some(what) = Announcement::from_text(n.payload()) {
                    what.ring(signals);
                }
            }
            Ok(None) => return,
            Err(e) => {
                warn("notifications interrupted", &e);
                return;
            }
        }
    }
}

/// A lost listener only delays wake-ups until the next poll.
fn warn(what: &str, e: &sqlx::Error) {
    tracing::warn!(error = %e, "{what}; wake-ups wait for the next poll meanwhile");
}
