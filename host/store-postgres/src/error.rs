//! The driver's errors in the store's neutral terms.
//!
//! Nothing above this crate sees a sqlx type: each error becomes a
//! [`StoreError`], `Unavailable` when the database cannot serve now (the
//! pool timed out or closed, the connection broke, the server is shutting
//! down or out of connections), `Unstorable` for text Postgres cannot hold,
//! and `Backend` otherwise, with sqlx's error as the source. Call sites convert with `.map_err(db)?`.

use runhook_store::StoreError;

/// SQLSTATE classes and codes that say "try again later": 08 connection
/// exceptions, 53 insufficient resources, 57P01-57P03 shutdown and
/// startup.
fn transient(code: &str) -> bool {
    code.starts_with("08") || code.starts_with("53") || matches!(code, "57P01" | "57P02" | "57P03")
}

/// `e` as a [`StoreError`].
pub(crate) fn db(e: sqlx::Error) -> StoreError {
    // 22021, 22P05: text Postgres cannot hold (a NUL character).
    if let Some(d) = e.as_database_error()
        && d.code().is_some_and(|c| c == "22021" || c == "22P05")
    {
        return StoreError::Unstorable(format!(
            "a text value holds a character the database cannot store: {}",
            d.message()
        ));
    }
    let unavailable = matches!(e, sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_))
        || e.as_database_error().and_then(|d| d.code()).is_some_and(|c| transient(&c));
    if unavailable { StoreError::Unavailable(Box::new(e)) } else { StoreError::Backend(Box::new(e)) }
}

/// A failed migration as a [`StoreError`].
pub(crate) fn migration(e: sqlx::migrate::MigrateError) -> StoreError {
    StoreError::Backend(Box::new(e))
}

/// Whether a transaction failed only because a concurrent one got there
/// first (a unique key taken meanwhile, a deadlock, a serialization
/// failure): run again, it sees the other's result.
pub(crate) fn lost_race(e: &StoreError) -> bool {
    let StoreError::Backend(source) = e else { return false };
    let Some(sqlx::Error::Database(d)) = source.downcast_ref::<sqlx::Error>() else { return false };
    d.code().is_some_and(|c| matches!(c.as_ref(), "23505" | "40001" | "40P01"))
}

/// Whether a statement failed on a foreign key (23503): a row it refers
/// to is gone, or a row still referred to was to be deleted.
pub(crate) fn foreign_key_violation(e: &StoreError) -> bool {
    let StoreError::Backend(source) = e else { return false };
    let Some(sqlx::Error::Database(d)) = source.downcast_ref::<sqlx::Error>() else { return false };
    d.code().is_some_and(|c| c == "23503")
}
