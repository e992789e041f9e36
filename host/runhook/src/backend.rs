//! Choosing and opening the store, and preparing the service over it.
//!
//! The backend is chosen here, by the configuration's database URL, so
//! that the server and the store contract stay free of any driver: the
//! embedded SQLite store in the data directory when none is set (one
//! process per directory, held by a lock), Postgres when one is (any
//! number of replicas; no lock, the database arbitrates).

use std::sync::Arc;

use anyhow::Context;

use runhook_core::secrets::Keyring;
use runhook_server::app::{App, load_keys, lock_data_dir};
use runhook_server::config::Config;
use runhook_store::Store;
use runhook_store_postgres::PgStore;
use runhook_store_sqlite::SqliteStore;

/// Opens the store `config` names, sealing secrets with `keys`.
pub async fn open_store(config: &Config, keys: Keyring) -> anyhow::Result<Arc<dyn Store>> {
    Ok(match &config.database {
        Some(url) => Arc::new(PgStore::open(url.expose(), keys).await.context("cannot open the Postgres store")?),
        None => Arc::new(
            SqliteStore::open(&config.data_dir, keys)
                .await
                .with_context(|| format!("cannot open the store in {}", config.data_dir.display()))?,
        ),
    })
}

/// Takes the data directory's lock (the embedded store only), loads the
/// secret keys, opens the store and prepares the service over it: what
/// `runhook serve`, the demo and the benchmarks start from.
pub async fn prepare(config: Config) -> anyhow::Result<App> {
    let lock = match config.database {
        Some(_) => None,
        None => Some(lock_data_dir(&config.data_dir)?),
    };
    let keys = load_keys(&config)?;
    let store = open_store(&config, keys.clone()).await?;
    App::prepare(config, store, keys, lock).await
}
