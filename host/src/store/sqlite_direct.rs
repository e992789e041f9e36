//! The delivery worker's hot paths on SQLite connections of their own.
//!
//! sqlx drives each SQLite connection from a thread of its own and hands
//! every result row, and every statement, to the caller through a channel
//! between threads. For the delivery worker's two hot paths (reading a
//! page of due deliveries, recording a group of attempts) that hand-off
//! cost more than SQLite's work: measured with `runhook bench deliveries`,
//! the thread wake-ups and per-row copies were most of the store's share.
//! A [`Direct`] connection is opened with rusqlite on the same file and
//! used from a blocking thread, so a batch is one hand-off whatever its
//! size, and its statements stay prepared from one batch to the next in
//! rusqlite's cache (its 16 places hold the worker's four statements).
//!
//! Invariants: a batch runs with no transaction open and must not leave one
//! open (rusqlite's `Transaction` rolls back when dropped, also on panic).
//! Writing through a `Direct` connection is only done while holding the
//! store's single sqlx write connection, so the process still has one
//! writer at a time and never waits on SQLite's file lock.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::StoreError;

/// One rusqlite connection, used by one batch at a time.
#[derive(Debug, Clone)]
pub(super) struct Direct {
    conn: Arc<Mutex<rusqlite::Connection>>,
}

impl Direct {
    /// Opens `path` (already created and migrated by sqlx) with the store's
    /// settings; `checkpoint_pages` is the WAL size at which a commit on this
    /// connection checkpoints.
    pub(super) fn open(path: &Path, read_only: bool, checkpoint_pages: u32) -> Result<Self, StoreError> {
        use rusqlite::OpenFlags;
        let flags = if read_only { OpenFlags::SQLITE_OPEN_READ_ONLY } else { OpenFlags::SQLITE_OPEN_READ_WRITE };
        let conn = rusqlite::Connection::open_with_flags(path, flags | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
        conn.busy_timeout(Duration::from_secs(10))?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", true)?;
        conn.pragma_update(None, "wal_autocheckpoint", checkpoint_pages)?;
        Ok(Self { conn: Arc::new(Mutex::new(conn)) })
    }

    /// Runs `work` on the connection, on a blocking thread.
    pub(super) async fn run<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut rusqlite::Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            // A batch that panicked rolled its transaction back while
            // unwinding, so the connection is fit for the next one.
            let mut db = conn.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            work(&mut db)
        })
        .await
        // Only a panic in `work` ends the blocking task early.
        .map_err(|_| StoreError::Database(sqlx::Error::WorkerCrashed))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_failed_batch_rolls_back_and_leaves_the_connection_usable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        rusqlite::Connection::open(&path).unwrap().execute_batch("CREATE TABLE t (k TEXT PRIMARY KEY)").unwrap();
        let db = Direct::open(&path, false, 1000).unwrap();

        let failed = db
            .run(|db| {
                let tx = db.transaction()?;
                tx.execute("INSERT INTO t (k) VALUES ('a')", [])?;
                tx.execute("INSERT INTO t (k) VALUES ('a')", [])?; // a duplicate key
                tx.commit()?;
                Ok(())
            })
            .await;
        assert!(matches!(failed, Err(StoreError::Direct(_))), "{failed:?}");

        // A panicking batch rolls back too.
        let panicked = db
            .run(|db| -> Result<(), StoreError> {
                let tx = db.transaction()?;
                tx.execute("INSERT INTO t (k) VALUES ('p')", [])?;
                panic!("a bug in a batch");
            })
            .await;
        assert!(matches!(panicked, Err(StoreError::Database(_))), "{panicked:?}");

        // No transaction is left open, and neither insert was kept.
        db.run(|db| Ok(db.execute("INSERT INTO t (k) VALUES ('b')", [])?)).await.unwrap();
        let keys = db
            .run(|db| {
                let mut q = db.prepare_cached("SELECT k FROM t ORDER BY k")?;
                let keys = q.query_map([], |r| r.get::<_, String>(0))?.collect::<Result<Vec<_>, _>>()?;
                Ok(keys)
            })
            .await
            .unwrap();
        assert_eq!(keys, ["b"]);
    }
}
