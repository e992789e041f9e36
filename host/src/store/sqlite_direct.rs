//! Batches run on a pooled connection's own SQLite handle.
//!
//! sqlx drives each SQLite connection from a thread of its own and hands
//! every result row, and every statement, to the caller through a channel
//! between threads. For the delivery worker's two hot paths (reading a
//! page of due deliveries, recording a group of attempts) that hand-off
//! cost more than SQLite's work: measured with `runhook bench deliveries`,
//! the thread wake-ups and per-row copies were most of the store's share.
//! [`with_handle`] instead borrows a connection from the pool, locks its
//! handle (sqlx guarantees its thread makes no call on it meanwhile) and
//! runs a closure on it with rusqlite, on a blocking thread, so a batch is
//! one hand-off whatever its size.
//!
//! Invariants: the closure runs with no transaction open and must not
//! leave one open (rusqlite's `Transaction` rolls back when dropped); the
//! handle is never closed here (`from_handle` does not own it), and
//! statements prepared here are finalized before the lock is released.

use sqlx::SqlitePool;

use super::StoreError;

/// Runs `work` on a connection of `pool`, directly on its SQLite handle,
/// on a blocking thread.
#[allow(unsafe_code)]
pub(super) async fn with_handle<T, F>(pool: &SqlitePool, work: F) -> Result<T, StoreError>
where
    T: Send + 'static,
    F: FnOnce(&mut rusqlite::Connection) -> Result<T, StoreError> + Send + 'static,
{
    let mut conn = pool.acquire().await?;
    let runtime = tokio::runtime::Handle::current();
    let (conn, result) = tokio::task::spawn_blocking(move || {
        let result = runtime.block_on(conn.lock_handle()).map_err(StoreError::from).and_then(|mut handle| {
            // SAFETY: the handle is locked for as long as `db` lives: sqlx's
            // thread makes no call on it until `handle` is dropped, after `db`.
            // `from_handle` does not close it; dropping `db` finalizes the
            // statements it prepared.
            let mut db = unsafe { rusqlite::Connection::from_handle(handle.as_raw_handle().as_ptr()) }?;
            let result = work(&mut db);
            drop(db);
            drop(handle);
            result
        });
        // The connection goes back to the pool from the caller's task.
        (conn, result)
    })
    .await
    // Only a panic in `work` ends the blocking task early.
    .map_err(|_| StoreError::Database(sqlx::Error::WorkerCrashed))?;
    drop(conn);
    result
}

#[cfg(test)]
mod tests {
    use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};

    use super::*;

    #[tokio::test]
    async fn a_failed_batch_rolls_back_and_hands_the_connection_back_usable() {
        let dir = tempfile::tempdir().unwrap();
        let options = SqliteConnectOptions::new().filename(dir.path().join("t.db")).create_if_missing(true);
        let pool = SqlitePoolOptions::new().max_connections(1).connect_with(options).await.unwrap();
        sqlx::query("CREATE TABLE t (k TEXT PRIMARY KEY)").execute(&pool).await.unwrap();

        let failed = with_handle(&pool, |db| {
            let tx = db.transaction()?;
            tx.execute("INSERT INTO t (k) VALUES ('a')", [])?;
            tx.execute("INSERT INTO t (k) VALUES ('a')", [])?; // a duplicate key
            tx.commit()?;
            Ok(())
        })
        .await;
        assert!(matches!(failed, Err(StoreError::Direct(_))), "{failed:?}");

        // The one connection is back in the pool, outside any transaction,
        // and the first insert was rolled back with the batch.
        sqlx::query("INSERT INTO t (k) VALUES ('b')").execute(&pool).await.unwrap();
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM t").fetch_one(&pool).await.unwrap();
        assert_eq!(n, 1);
        let read = with_handle(&pool, |db| Ok(db.query_row("SELECT k FROM t", [], |r| r.get::<_, String>(0))?)).await;
        assert_eq!(read.unwrap(), "b");
    }
}
