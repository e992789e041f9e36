//! runhook's scale-out store: one Postgres database that every replica of
//! runhook shares.
//!
//! The same contract as the embedded store (`runhook-store`), said in
//! Postgres: one transaction per call, from a pool every task of the
//! process shares. What differs is what concurrent writers need:
//!
//! - **The change sequence** is the pair (writing transaction's id,
//!   sequence value) and [`RuleStore::change_seq`](runhook_store::RuleStore::change_seq)
//!   is the horizon below the oldest transaction still running
//!   (`pg_snapshot_xmin`), so a run written by a transaction that took its
//!   values early but commits late is never passed over by a rule (`tx`).
//! - **Ingest** locks the runs it merges into (`FOR UPDATE`, in id order)
//!   so two replicas' merges of one run never lose a field; a batch that
//!   lost a race to create a run or a project is run again, and then merges
//!   into what the other created.
//! - **Wake-ups** cross replicas by LISTEN/NOTIFY, sent only by commits
//!   that queued deliveries and by the API's announcements; polls remain
//!   the fallback (`notify`).
//! - **Claims** lock the delivery rows they decide on and skip those
//!   another worker is deciding on (`FOR UPDATE SKIP LOCKED`).
//!
//! One file per concern of the store contract, as in the embedded store:
//! `runs`, `rules`, `outbox`, `secrets`; `tx` holds the statements of a
//! write transaction behind the contract's transaction traits.

mod alerts;
mod datasets;
mod error;
mod import;
mod leases;
mod notify;
mod outbox;
mod plugins;
mod queues;
mod rows;
mod rules;
mod runs;
mod secrets;
mod threads;
mod tx;

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use runhook_core::model::signals::RuleSignals;
use runhook_core::model::{SessionId, TenantId};
use runhook_core::secrets::Keyring;
use runhook_store::sealed::TargetMemo;
use runhook_store::{OutboxBell, StoreError};

use crate::error::{db, migration};

/// Connections each process keeps at most: ingest, reads, the rule
/// engine's cycles and the delivery worker share them.
const MAX_CONNECTIONS: u32 = 16;

/// The Postgres store.
#[derive(Debug, Clone)]
pub struct PgStore {
    pub(crate) pool: PgPool,
    /// Seals URLs, headers and signing secrets before they are written.
    pub(crate) keys: Keyring,
    /// Sealings of recent delivery targets, both ways (see [`runhook_store::sealed`]).
    pub(crate) targets: Arc<TargetMemo>,
    /// Rung when deliveries are queued, by this process or another replica
    /// (see [`OutboxBell`] and `notify`).
    pub(crate) bell: Arc<OutboxBell>,
    /// Rung by every replica's announcements (`notify`).
    pub(crate) signals: Arc<RuleSignals>,
    /// Keeps the listener and notifier running while a clone of the store
    /// lives.
    listening: Arc<notify::Listening>,
    tenant: TenantId,
}

impl PgStore {
    /// Connects to the database at `url` (`postgres://...`), migrates it
    /// (replicas starting together take turns: the migrator holds an
    /// advisory lock), and seals secrets with `keys`.
    pub async fn open(url: &str, keys: Keyring) -> Result<Self, StoreError> {
        let options: PgConnectOptions = url.parse().map_err(db)?;
        // A replica that cannot reach the database within this answers
        // 503 rather than holding the request.
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options.application_name("runhook"))
            .await
            .map_err(db)?;
        sqlx::migrate!("./migrations").run(&pool).await.map_err(migration)?;
        let tenant = tenant_id(&pool).await?;
        let (bell, signals) = (Arc::<OutboxBell>::default(), Arc::<RuleSignals>::default());
        let listening = Arc::new(notify::start(pool.clone(), bell.clone(), signals.clone()));
        Ok(Self { pool, keys, targets: Arc::default(), bell, signals, listening, tenant })
    }

    /// A commit changed runs of `projects`: wakes their rules here at once
    /// and on the other replicas through `notify`.
    pub(crate) fn runs_changed(&self, projects: std::collections::BTreeSet<SessionId>) {
        for project in &projects {
            self.signals.runs_changed(*project);
        }
        self.listening.runs_changed(projects);
    }
}

async fn tenant_id(pool: &PgPool) -> Result<TenantId, StoreError> {
    sqlx::query("INSERT INTO meta (key, value) VALUES ('tenant_id', $1) ON CONFLICT (key) DO NOTHING")
        .bind(TenantId::new_v4().to_string())
        .execute(pool)
        .await
        .map_err(db)?;
    let value: String =
        sqlx::query_scalar("SELECT value FROM meta WHERE key = 'tenant_id'").fetch_one(pool).await.map_err(db)?;
    value.parse().map_err(|_| StoreError::corrupt("meta.tenant_id", format!("{value:?} is not a UUID")))
}

#[cfg(test)]
mod tests;
