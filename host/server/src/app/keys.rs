//! The secret keys a process seals with: loaded at start, and re-read
//! from the key file while it serves.
//!
//! Keys come from `RUNHOOK_SECRET_KEY` (fixed until a restart) or from a
//! key file (`secret_key_file`, or `secret.key` in the data directory).
//! A file is checked every second; when its keys change, the process's
//! [`Keyring`] (shared with the store) takes them at once, and the next
//! heartbeat reports their ids to the cluster. `runhook keys rotate`
//! rewrites the file in steps and waits at each for every replica to
//! report the keys it wrote: that is how a cluster rotates keys without
//! stopping. A file that cannot be read or parsed is logged and the keys
//! in use stay.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;

use crate::config::Config;
use runhook_core::secrets::{self, Keyring};

/// How often the key file is checked.
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// The key file `config` reads keys from; `None` when they come from
/// `RUNHOOK_SECRET_KEY`.
pub fn key_file(config: &Config) -> Option<PathBuf> {
    config.secret_key.is_none().then(|| file_of(config))
}

fn file_of(config: &Config) -> PathBuf {
    config.secret_key_file.clone().unwrap_or_else(|| config.data_dir.join(secrets::KEY_FILE))
}

/// The secret keys: from `RUNHOOK_SECRET_KEY`, or the key file (created
/// at first start).
pub fn load_keys(config: &Config) -> anyhow::Result<Keyring> {
    let keys = match &config.secret_key {
        Some(v) => Keyring::parse("RUNHOOK_SECRET_KEY", v.split(','))?,
        None => Keyring::load_file(&file_of(config))?,
    };
    tracing::debug!(keys = ?keys.ids(), "secret keys loaded");
    Ok(keys)
}

fn stamp(file: &std::path::Path) -> Option<(u64, Option<SystemTime>)> {
    std::fs::metadata(file).ok().map(|m| (m.len(), m.modified().ok()))
}

/// Re-reads `file` into `keys` whenever it changes, until `shutdown`.
pub(super) fn watch(keys: Keyring, file: PathBuf, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut seen = stamp(&file);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(CHECK_EVERY) => {}
            }
            let now = stamp(&file);
            if now == seen {
                continue;
            }
            seen = now;
            match Keyring::read_file(&file) {
                Ok(read) if read.ids() != keys.ids() => {
                    keys.replace(&read);
                    tracing::info!(file = %file.display(), keys = ?read.ids(), "secret keys reloaded");
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(file = %file.display(), error = %e, "key file unreadable; the keys in use stay")
                }
            }
        }
    })
}
