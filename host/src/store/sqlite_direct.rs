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
