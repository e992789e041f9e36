//! runhook's embedded store: one SQLite file in the data directory.
//!
//! WAL mode lets readers run beside the writer. All writes go through a
//! pool of exactly one connection, so they queue in the process instead of
//! spinning on SQLite's file lock, and each ingest request is one
//! transaction. Reads use a separate small pool. The delivery worker's two
//! hot paths run on rusqlite connections of their own
//! (`direct`); the one that writes does so only while
//! holding the pool's write connection, so there is still one writer.
//!
//! Ids are stored as hyphenated text, JSON fields as text, timestamps in the
//! offset-free UTC form, which sorts in time order (`rows`).
//!
//! One file per concern of the store contract: `runs` (`RunStore`),
//! `rules` (`RuleStore`), `outbox` (`OutboxStore`), `secrets`
//! (`SecretStore`); `tx` holds the statements of a write transaction
//! behind the contract's transaction traits, so the ingest merge and the
//! cycle's commit are composed by `runhook-store`, not here.

mod alerts;
mod datasets;
mod direct;
mod error;
mod export;
mod leases;
mod outbox;
mod plugins;
mod queues;
mod rows;
mod rules;
mod runs;
mod secrets;
mod threads;
mod tx;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use runhook_core::model::TenantId;
use runhook_core::model::signals::RuleSignals;
use runhook_core::secrets::Keyring;
use runhook_store::sealed::TargetMemo;
use runhook_store::{OutboxBell, StoreError};

use crate::direct::Direct;
pub use crate::direct::DirectCpu;
use crate::error::db;
use crate::rows::parse_id;

/// The WAL size (pages) at which a writer's commit checkpoints; see `open`.
const CHECKPOINT_PAGES: u32 = 8000;

/// The SQLite store.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pub(crate) write: SqlitePool,
    pub(crate) read: SqlitePool,
    /// The delivery worker's connections (see [`crate::direct`]):
    /// one that reads due deliveries, one that records attempts.
    pub(crate) due_reader: Direct,
    pub(crate) recorder: Direct,
    /// The rule engine's window pages (see [`crate::direct`]).
    pub(crate) window_reader: Direct,
    /// Runs and trees by id, which every rule reads for the runs it selects
    /// (beside the window reader: a cycle reads the next page meanwhile).
    pub(crate) run_reader: Direct,
    /// Seals URLs, headers and signing secrets before they are written.
    pub(crate) keys: Keyring,
    /// Sealings of recent delivery targets, both ways (see [`runhook_store::sealed`]).
    pub(crate) targets: Arc<TargetMemo>,
    /// Rung when a commit queues deliveries (see [`OutboxBell`]).
    pub(crate) bell: Arc<OutboxBell>,
    /// Rung by announcements (one process: they stay in it).
    pub(crate) signals: Arc<RuleSignals>,
    tenant: TenantId,
}

impl SqliteStore {
    /// CPU time the delivery worker's store batches have used so far.
    pub fn delivery_cpu(&self) -> DirectCpu {
        DirectCpu { due_reads: self.due_reader.cpu_used(), records: self.recorder.cpu_used() }
    }

    /// Copies every page of the write-ahead log into the database file, as
    /// the next commit past `CHECKPOINT_PAGES` would, and has the next
    /// writer start the log over (the file is kept: writing over it costs
    /// less than growing a truncated one). `runhook-bench deliveries` runs
    /// it after queueing, so the drain it times never pays for copying the
    /// bodies it queued.
    pub async fn checkpoint(&self) -> Result<(), StoreError> {
        sqlx::query("PRAGMA wal_checkpoint(RESTART)").execute(&self.write).await.map_err(db)?;
        Ok(())
    }

    /// Opens (creating if needed) the store in `data_dir`, and migrates it;
    /// secrets are sealed with `keys`.
    pub async fn open(data_dir: &Path, keys: Keyring) -> Result<Self, StoreError> {
        create_private_dir(data_dir).map_err(|source| StoreError::DataDir { path: data_dir.to_path_buf(), source })?;
        let path = data_dir.join("runhook.db");
        let options = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        // The writer checkpoints the WAL into the database every 8000 pages
        // (32 MiB) rather than SQLite's 1000: delivery state is a small set
        // of pages rewritten again and again, and a rarer checkpoint copies
        // each of them once instead of many times.
        // The database is a local file: checking a connection before each
        // use (a round trip to its thread) finds nothing a query would not.
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .test_before_acquire(false)
            .connect_with(options.clone().pragma("wal_autocheckpoint", CHECKPOINT_PAGES.to_string()))
            .await
            .map_err(db)?;
        sqlx::migrate!("./migrations").run(&write).await.map_err(db)?;
        let read = SqlitePoolOptions::new()
            .max_connections(4)
            .test_before_acquire(false)
            .connect_with(options.read_only(true))
            .await
            .map_err(db)?;
        // One process holds the data directory (its lock): leases and
        // heartbeats left by one that died are void, and a restart resumes
        // its rules at once rather than after their leases expire.
        for sql in [
            "UPDATE rules SET lease_owner = NULL, lease_until = NULL",
            "DELETE FROM replicas",
            "DELETE FROM singletons",
        ] {
            sqlx::query(sql).execute(&write).await.map_err(db)?;
        }
        let tenant = tenant_id(&write).await?;
        let due_reader = Direct::open(&path, true, CHECKPOINT_PAGES)?;
        let recorder = Direct::open(&path, false, CHECKPOINT_PAGES)?;
        let window_reader = Direct::open(&path, true, CHECKPOINT_PAGES)?;
        let run_reader = Direct::open(&path, true, CHECKPOINT_PAGES)?;
        Ok(Self {
            write,
            read,
            due_reader,
            recorder,
            window_reader,
            run_reader,
            keys,
            targets: Arc::default(),
            bell: Arc::default(),
            signals: Arc::default(),
            tenant,
        })
    }
}

async fn tenant_id(pool: &SqlitePool) -> Result<TenantId, StoreError> {
    let fresh = TenantId::new_v4().to_string();
    sqlx::query("INSERT INTO meta (key, value) VALUES ('tenant_id', ?) ON CONFLICT (key) DO NOTHING")
        .bind(&fresh)
        .execute(pool)
        .await
        .map_err(db)?;
    let value: String =
        sqlx::query_scalar("SELECT value FROM meta WHERE key = 'tenant_id'").fetch_one(pool).await.map_err(db)?;
    parse_id(&value, "meta.tenant_id")
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
    }
    #[cfg(not(unix))]
    std::fs::create_dir_all(dir)
}

/// The store contract's conformance suite, on this store.
#[cfg(test)]
mod conformance {
    use std::sync::Arc;

    use runhook_core::secrets::Keyring;
    use runhook_store::Store;
    use runhook_store::conformance::Harness;

    use super::SqliteStore;

    /// A store in a temporary data directory of its own.
    struct Sqlite(tempfile::TempDir);

    #[async_trait::async_trait]
    impl Harness for Sqlite {
        async fn open(&self, keys: &Keyring) -> Arc<dyn Store> {
            Arc::new(SqliteStore::open(self.0.path(), keys.clone()).await.expect("the store opens"))
        }
    }

    runhook_store::conformance_suite!(Sqlite(tempfile::tempdir().expect("a temporary directory")));
}
