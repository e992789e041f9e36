//! The hot paths of the delivery worker and the rule engine on SQLite
//! connections of their own.
//!
//! sqlx drives each SQLite connection from a thread of its own and hands
//! every result row, and every statement, to the caller through a channel
//! between threads. For the delivery worker's two hot paths (reading a
//! page of due deliveries, recording a group of attempts) and the rule
//! engine's window reads (a thousand runs a page) that hand-off cost more
//! than SQLite's work: measured with `runhook-bench deliveries` and
//! `runhook-bench rules`, the thread wake-ups and per-row copies were most
//! of the store's share.
//! A [`Direct`] connection is opened with rusqlite on the same file and
//! used from a blocking thread, so a batch is one hand-off whatever its
//! size, and its statements stay prepared from one batch to the next in
//! rusqlite's cache (its 16 places hold the worker's four statements).
//!
//! Each connection counts the CPU time its batches use (where the system
//! tells a thread's CPU time), so `runhook-bench deliveries` can say how
//! much of a delivery's cost is SQLite's own work.
//!
//! Invariants: a batch runs with no transaction open and must not leave one
//! open (rusqlite's `Transaction` rolls back when dropped, also on panic).
//! Writing through a `Direct` connection is only done while holding the
//! store's single sqlx write connection, so the process still has one
//! writer at a time and never waits on SQLite's file lock.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::error::db;
use runhook_store::StoreError;

/// One rusqlite connection, used by one batch at a time.
#[derive(Debug, Clone)]
pub(super) struct Direct {
    conn: Arc<Mutex<rusqlite::Connection>>,
    /// CPU time used by batches so far, in nanoseconds.
    cpu_nanos: Arc<AtomicU64>,
}

/// CPU time the delivery worker's store batches have used since the store
/// was opened (zero where the system does not tell a thread's CPU time).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DirectCpu {
    /// Reading pages of due deliveries.
    pub due_reads: Duration,
    /// Recording groups of attempts, commits included.
    pub records: Duration,
}

impl DirectCpu {
    /// The CPU time used between `earlier` and this reading.
    pub fn since(self, earlier: DirectCpu) -> DirectCpu {
        DirectCpu {
            due_reads: self.due_reads.saturating_sub(earlier.due_reads),
            records: self.records.saturating_sub(earlier.records),
        }
    }
}

impl Direct {
    /// Opens `path` (already created and migrated by sqlx) with the store's
    /// settings; `checkpoint_pages` is the WAL size at which a commit on this
    /// connection checkpoints.
    pub(super) fn open(path: &Path, read_only: bool, checkpoint_pages: u32) -> Result<Self, StoreError> {
        use rusqlite::OpenFlags;
        let flags = if read_only { OpenFlags::SQLITE_OPEN_READ_ONLY } else { OpenFlags::SQLITE_OPEN_READ_WRITE };
        let conn = rusqlite::Connection::open_with_flags(path, flags | OpenFlags::SQLITE_OPEN_NO_MUTEX).map_err(db)?;
        conn.busy_timeout(Duration::from_secs(10)).map_err(db)?;
        conn.pragma_update(None, "synchronous", "NORMAL").map_err(db)?;
        conn.pragma_update(None, "foreign_keys", true).map_err(db)?;
        conn.pragma_update(None, "wal_autocheckpoint", checkpoint_pages).map_err(db)?;
        Ok(Self { conn: Arc::new(Mutex::new(conn)), cpu_nanos: Arc::default() })
    }

    /// Runs `work` on the connection, on a blocking thread.
    pub(super) async fn run<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut rusqlite::Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (conn, cpu_nanos) = (self.conn.clone(), self.cpu_nanos.clone());
        tokio::task::spawn_blocking(move || {
            let before = thread_cpu();
            // A batch that panicked rolled its transaction back while
            // unwinding, so the connection is fit for the next one.
            let mut db = conn.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let result = work(&mut db);
            if let Some(used) = before.zip(thread_cpu()).map(|(b, a)| a.saturating_sub(b)) {
                cpu_nanos.fetch_add(u64::try_from(used.as_nanos()).unwrap_or(u64::MAX), Ordering::Relaxed);
            }
            result
        })
        .await
        // Only a panic in `work` ends the blocking task early.
        .map_err(|_| StoreError::Backend("a database batch panicked; nothing of it was kept".into()))?
    }

    /// CPU time this connection's batches have used so far.
    pub(super) fn cpu_used(&self) -> Duration {
        Duration::from_nanos(self.cpu_nanos.load(Ordering::Relaxed))
    }
}

/// CPU time the calling thread has used so far.
#[cfg(unix)]
fn thread_cpu() -> Option<Duration> {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Some(Duration::new(u64::try_from(t.tv_sec).ok()?, u32::try_from(t.tv_nsec).ok()?))
}

#[cfg(not(unix))]
fn thread_cpu() -> Option<Duration> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_failed_batch_rolls_back_and_leaves_the_connection_usable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        rusqlite::Connection::open(&path).unwrap().execute_batch("CREATE TABLE t (k TEXT PRIMARY KEY)").unwrap();
        let direct = Direct::open(&path, false, 1000).unwrap();

        let failed = direct
            .run(|conn| {
                let tx = conn.transaction().map_err(db)?;
                tx.execute("INSERT INTO t (k) VALUES ('a')", []).map_err(db)?;
                tx.execute("INSERT INTO t (k) VALUES ('a')", []).map_err(db)?; // a duplicate key
                tx.commit().map_err(db)?;
                Ok(())
            })
            .await;
        assert!(matches!(&failed, Err(StoreError::Backend(e)) if e.is::<rusqlite::Error>()), "{failed:?}");

        // A panicking batch rolls back too.
        let panicked = direct
            .run(|conn| -> Result<(), StoreError> {
                let tx = conn.transaction().map_err(db)?;
                tx.execute("INSERT INTO t (k) VALUES ('p')", []).map_err(db)?;
                panic!("a bug in a batch");
            })
            .await;
        assert!(matches!(&panicked, Err(StoreError::Backend(e)) if e.to_string().contains("panicked")), "{panicked:?}");

        // No transaction is left open, and neither insert was kept.
        direct.run(|conn| conn.execute("INSERT INTO t (k) VALUES ('b')", []).map_err(db)).await.unwrap();
        let keys = direct
            .run(|conn| {
                let mut q = conn.prepare_cached("SELECT k FROM t ORDER BY k").map_err(db)?;
                let keys = q
                    .query_map([], |r| r.get::<_, String>(0))
                    .map_err(db)?
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(db)?;
                Ok(keys)
            })
            .await
            .unwrap();
        assert_eq!(keys, ["b"]);
        // The batches' CPU time was counted (where the system tells it).
        assert_eq!(direct.cpu_used() > Duration::ZERO, cfg!(unix));
    }
}
