//! The drivers' errors in the store's neutral terms.
//!
//! Nothing above this crate sees a sqlx or rusqlite type: each driver error
//! becomes a [`StoreError`], `Unavailable` when the database cannot serve
//! now (a pool timed out or closed, an I/O failure, the file busy past the
//! busy timeout) and `Backend` otherwise, with the driver's error as its
//! source. Call sites convert with `.map_err(db)?`.

use runhook_store::StoreError;

/// A driver error this crate meets.
pub(crate) trait DriverError: std::error::Error + Send + Sync + Sized + 'static {
    /// Whether the database could serve the call later (the call may be retried).
    fn unavailable(&self) -> bool;
}

impl DriverError for sqlx::Error {
    fn unavailable(&self) -> bool {
        matches!(self, sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_))
            || self.as_database_error().and_then(|e| e.code()).is_some_and(|c| c == "5" || c == "6")
    }
}

impl DriverError for sqlx::migrate::MigrateError {
    fn unavailable(&self) -> bool {
        false
    }
}

impl DriverError for rusqlite::Error {
    fn unavailable(&self) -> bool {
        matches!(
            self.sqlite_error_code(),
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
        )
    }
}

/// `e` as a [`StoreError`].
pub(crate) fn db<E: DriverError>(e: E) -> StoreError {
    if e.unavailable() { StoreError::Unavailable(Box::new(e)) } else { StoreError::Backend(Box::new(e)) }
}
