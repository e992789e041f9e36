//! Wake-ups between replicas: LISTEN/NOTIFY.
//!
//! Three channels. `runhook_outbox` is notified by a transaction that queued
//! deliveries (a cycle's commit, a redelivery), never by ingest: NOTIFY
//! takes a lock at commit that every notifying transaction shares, so it
//! is sent only where a worker has something to do. `runhook_rules`
//! carries the API's announcements (rules changed, a rule triggered) to
//! whichever replica holds the rule. Notifications are sent inside the
//! transaction, so they arrive only if it commits.
//!
//! `runhook_runs` wakes the rules of projects whose runs changed. Ingest
//! commits about a thousand times a second under load, so it does not
//! notify in its transaction (that would serialise every commit on the
//! notification lock). After a commit the store rings this process's
//! rules at once and hands the projects to a notifier task, which sends
//! one notification for all the projects changed since its last, at most
//! every [`DEBOUNCE`]: a replica hears of a change within about that,
//! however many commits there were. A process that dies between its
//! commit and the notification loses the wake-up; the rule's interval is
//! then the longest its runs wait.
//!
//! Each store listens on one connection of its own and rings the
//! process's outbox bell and rule signals. A notification is a hint: while
//! the listening connection is down (sqlx's listener drops what arrives
//! while it reconnects) the delivery worker's poll and the scheduler's
//! tick still find the work, and on reconnecting the store rings both
//! once, so they look at once.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgListener;

use runhook_core::model::SessionId;
use runhook_core::model::signals::RuleSignals;
use runhook_store::{Announcement, OutboxBell};

/// Deliveries were queued.
pub(crate) const OUTBOX: &str = "runhook_outbox";
/// An [`Announcement`] (its text as the payload).
pub(crate) const RULES: &str = "runhook_rules";
/// Runs of projects changed: the payload is the sending store's tag, then
/// the projects' ids, separated by spaces.
pub(crate) const RUNS: &str = "runhook_runs";

/// The shortest time between two `runhook_runs` notifications of one store.
pub(crate) const DEBOUNCE: Duration = Duration::from_millis(10);

/// Projects per notification: a payload holds at most 8,000 bytes.
const PROJECTS_PER_NOTIFICATION: usize = 150;

/// Held by every clone of a store: when the last is dropped, its listener
/// and notifier stop (and release their connections).
#[derive(Debug)]
pub(crate) struct Listening {
    _stop: tokio::sync::oneshot::Sender<()>,
    /// Projects changed by this store's commits, for the notifier.
    changed: tokio::sync::mpsc::UnboundedSender<BTreeSet<SessionId>>,
}

impl Listening {
    /// Tells the other replicas that runs of `projects` changed.
    pub(crate) fn runs_changed(&self, projects: BTreeSet<SessionId>) {
        // Fails only once the notifier has stopped with the store.
        let _ = self.changed.send(projects);
    }
}

/// Starts listening and notifying for `pool`'s store, until the returned
/// guard is dropped.
pub(crate) fn start(pool: PgPool, bell: Arc<OutboxBell>, signals: Arc<RuleSignals>) -> Listening {
    let (stop, stopped) = tokio::sync::oneshot::channel();
    let (changed, projects) = tokio::sync::mpsc::unbounded_channel();
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let origin = tag.clone();
    let notifier = pool.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = stopped => {}
            () = listen(pool, bell, signals, &tag) => {}
            () = notify_runs(notifier, projects, &origin) => {}
        }
    });
    Listening { _stop: stop, changed }
}

/// Sends `runhook_runs` for the projects changed since the last one, at
/// most every [`DEBOUNCE`], until the store is dropped.
async fn notify_runs(pool: PgPool, mut changes: tokio::sync::mpsc::UnboundedReceiver<BTreeSet<SessionId>>, tag: &str) {
    while let Some(first) = changes.recv().await {
        let mut projects = first;
        while let Ok(more) = changes.try_recv() {
            projects.extend(more);
        }
        let ids: Vec<String> = projects.iter().map(ToString::to_string).collect();
        for chunk in ids.chunks(PROJECTS_PER_NOTIFICATION) {
            let payload = format!("{tag} {}", chunk.join(" "));
            if let Err(e) = sqlx::query("SELECT pg_notify($1, $2)").bind(RUNS).bind(payload).execute(&pool).await {
                tracing::warn!(error = %e, "cannot wake other replicas' rules; they look at their interval");
            }
        }
        tokio::time::sleep(DEBOUNCE).await;
    }
}

/// Listens, reconnecting after a second when the connection is lost.
async fn listen(pool: PgPool, bell: Arc<OutboxBell>, signals: Arc<RuleSignals>, tag: &str) {
    loop {
        match PgListener::connect_with(&pool).await {
            Ok(mut listener) => match listener.listen_all([OUTBOX, RULES, RUNS]).await {
                Ok(()) => {
                    bell.ring();
                    signals.rules_changed();
                    signals.all_runs_changed();
                    relay(&mut listener, &bell, &signals, tag).await;
                }
                Err(e) => warn("cannot listen for notifications", &e),
            },
            Err(e) => warn("cannot connect to listen for notifications", &e),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Rings for each notification until the connection is lost (this store's
/// own `runhook_runs` were rung when it committed).
async fn relay(listener: &mut PgListener, bell: &OutboxBell, signals: &RuleSignals, tag: &str) {
    loop {
        match listener.try_recv().await {
            Ok(Some(n)) if n.channel() == OUTBOX => bell.ring(),
            Ok(Some(n)) if n.channel() == RUNS => {
                let mut words = n.payload().split(' ');
                if words.next() == Some(tag) {
                    continue;
                }
                for project in words.filter_map(|w| w.parse().ok()) {
                    signals.runs_changed(project);
                }
            }
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
