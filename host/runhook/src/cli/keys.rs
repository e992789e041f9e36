//! `runhook keys rotate`: seal every stored secret under a new key.
//!
//! **The embedded store** (server stopped: the data directory's lock is
//! taken). With a key file: a new key is put first in the file (the old
//! ones kept), every URL, header value and signing secret is re-sealed
//! under it, then the old keys are dropped from the file. A crash in
//! between leaves a file with both keys, and the next start finishes the
//! re-sealing. With `RUNHOOK_SECRET_KEY`, the operator puts the new key
//! first in the variable; this command re-seals under it and says which
//! keys may go.
//!
//! **A shared database, while the replicas serve.** Each replica re-reads
//! its key file when it changes and reports the ids of the keys it holds
//! in its heartbeat. With a key file every replica reads (a mounted
//! secret), the command rewrites it in three steps and waits at each until
//! every live replica reports the keys written: (1) the new key after the
//! current one: every replica opens values sealed under either, still
//! sealing under the old; (2) the new key first: every replica seals under
//! it; then every stored value is re-sealed under it, in passes until one
//! finds nothing left (a commit sealed under the old key just before a
//! replica switched is caught by the next pass); (3) the old keys dropped.
//! At no point does a replica meet a value sealed under a key it lacks. A
//! replica that does not report a step within `--wait-seconds` stops the
//! command, named, with the file left at a step every replica can serve
//! (run it again to finish). With `RUNHOOK_SECRET_KEY` (which a replica
//! reads only at start), the operator restarts the replicas one by one
//! with the new key added after the current one, then again with it
//! first; this command then checks that every live replica seals under it,
//! re-seals, and says which keys may go.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};

use runhook_core::secrets::{KEY_FILE, Keyring};
use runhook_server::app::{key_file, load_keys, lock_data_dir};
use runhook_server::config::{Config, Overrides};
use runhook_store::Store;

#[derive(Debug, Subcommand)]
pub(super) enum KeysCommand {
    /// Generate a new key and re-seal every stored secret under it (on a
    /// shared database, while the replicas serve).
    Rotate(KeysArgs),
}

#[derive(Debug, Args)]
pub(super) struct KeysArgs {
    /// Data directory [default: ./runhook-data; env RUNHOOK_DATA_DIR].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// The Postgres database replicas share [default: env RUNHOOK_DATABASE_URL; the embedded store].
    #[arg(long)]
    database: Option<String>,
    /// TOML configuration file.
    #[arg(long, env = "RUNHOOK_CONFIG")]
    config: Option<PathBuf>,
    /// On a shared database: how long to wait at each step for every live
    /// replica to report the keys written.
    #[arg(long, default_value_t = 120)]
    wait_seconds: u64,
}

pub(super) fn run(cmd: KeysCommand) -> anyhow::Result<ExitCode> {
    let KeysCommand::Rotate(args) = cmd;
    let overrides =
        Overrides { data_dir: args.data_dir.clone(), database: args.database.clone(), ..Overrides::default() };
    let config = Config::load(args.config.as_deref(), |k| std::env::var(k).ok(), &overrides)?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let wait = Duration::from_secs(args.wait_seconds);
    match (&config.database, key_file(&config)) {
        (None, _) => runtime.block_on(rotate_embedded(&config))?,
        (Some(_), Some(file)) => runtime.block_on(rotate_live(&config, &file, wait))?,
        (Some(_), None) => runtime.block_on(rotate_restarted(&config))?,
    }
    Ok(ExitCode::SUCCESS)
}

async fn reseal(config: &Config, keys: Keyring) -> anyhow::Result<usize> {
    let store = crate::backend::open_store(config, keys).await?;
    Ok(store.reseal_secrets().await?)
}

async fn rotate_embedded(config: &Config) -> anyhow::Result<()> {
    let _lock = lock_data_dir(&config.data_dir)?;
    let current = load_keys(config)?;
    if config.secret_key.is_some() {
        let n = reseal(config, current.clone()).await?;
        let ids = current.ids();
        println!("re-sealed {n} values under key {} (the first in RUNHOOK_SECRET_KEY)", ids[0]);
        if ids.len() > 1 {
            println!(
                "no stored value needs keys {} any more; remove them from RUNHOOK_SECRET_KEY",
                ids[1..].join(", ")
            );
        }
        return Ok(());
    }
    let file = config.secret_key_file.clone().unwrap_or_else(|| config.data_dir.join(KEY_FILE));
    let rotated = current.with_new_key();
    rotated.write_file(&file)?;
    let n = reseal(config, rotated.clone()).await?;
    rotated.current_only().write_file(&file)?;
    let ids = rotated.ids();
    println!("new key {} in {}; re-sealed {n} values; retired keys {}", ids[0], file.display(), ids[1..].join(", "));
    Ok(())
}

/// Re-seals in passes until one finds nothing left; how many values changed.
async fn reseal_settled(store: &dyn Store) -> anyhow::Result<usize> {
    let mut total = 0;
    for pass in 0.. {
        let n = store.reseal_secrets().await.context("re-sealing failed")?;
        total += n;
        // Two passes at least: the second catches a commit sealed under
        // the old key by a transaction that began before its replica switched.
        if n == 0 && pass > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    Ok(total)
}

/// Waits until every live replica's keys satisfy `ready`.
async fn wait_for_replicas(
    store: &dyn Store,
    step: &str,
    wait: Duration,
    ready: impl Fn(&[String]) -> bool,
) -> anyhow::Result<usize> {
    let started = Instant::now();
    loop {
        let replicas = store.replica_keys().await?;
        let late: Vec<String> = replicas
            .iter()
            .filter(|(_, ids)| !ready(ids))
            .map(|(name, ids)| format!("{name} (keys {})", ids.join(", ")))
            .collect();
        if late.is_empty() {
            return Ok(replicas.len());
        }
        if started.elapsed() > wait {
            bail!(
                "{step}: replicas {} did not report the new keys within {}s. Does each read the same key file \
                 (secret_key_file)? A replica given RUNHOOK_SECRET_KEY takes keys only when restarted. The file is \
                 at a step every replica can serve; run the command again to finish",
                late.join("; "),
                wait.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn rotate_live(config: &Config, file: &Path, wait: Duration) -> anyhow::Result<()> {
    let current = Keyring::read_file(file).with_context(|| format!("cannot read the key file {}", file.display()))?;
    let store: Arc<dyn Store> = crate::backend::open_store(config, current.clone()).await?;
    let accepting = current.accepting_new_key();
    let new = accepting.ids()[1].clone();
    let old: Vec<String> = current.ids();

    accepting.write_file(file)?;
    let n =
        wait_for_replicas(store.as_ref(), "step 1 (every replica opens the new key)", wait, |ids| ids.contains(&new))
            .await?;
    println!("1/3 every replica ({n}) holds the new key {new} beside the current one");

    let Some(promoted) = accepting.promoted(&new) else { bail!("the new key vanished from the ring") };
    promoted.write_file(file)?;
    current.replace(&promoted);
    let n = wait_for_replicas(store.as_ref(), "step 2 (every replica seals under the new key)", wait, |ids| {
        ids.first() == Some(&new)
    })
    .await?;
    let resealed = reseal_settled(store.as_ref()).await?;
    println!("2/3 every replica ({n}) seals under {new}; re-sealed {resealed} stored values");

    promoted.current_only().write_file(file)?;
    let n =
        wait_for_replicas(store.as_ref(), "step 3 (the old keys dropped)", wait, |ids| ids == [new.clone()]).await?;
    println!("3/3 retired keys {} from {}; every replica ({n}) holds {new} only", old.join(", "), file.display());
    Ok(())
}

async fn rotate_restarted(config: &Config) -> anyhow::Result<()> {
    let keys = load_keys(config)?;
    let current = keys.ids()[0].clone();
    let store = crate::backend::open_store(config, keys.clone()).await?;
    let late: Vec<String> = store
        .replica_keys()
        .await?
        .into_iter()
        .filter(|(_, ids)| ids.first() != Some(&current))
        .map(|(name, ids)| format!("{name} (keys {})", ids.join(", ")))
        .collect();
    if !late.is_empty() {
        bail!(
            "replicas {} do not seal under key {current}, the first in RUNHOOK_SECRET_KEY. Restart each replica \
             with the new key after the current one, then again with the new key first, then run this again. \
             (With a key file every replica reads, set secret_key_file instead: this command then rotates \
             while they serve.)",
            late.join("; ")
        );
    }
    let n = reseal_settled(store.as_ref()).await?;
    println!("re-sealed {n} values under key {current}");
    if keys.ids().len() > 1 {
        println!(
            "no stored value needs keys {} any more; remove them from RUNHOOK_SECRET_KEY at each replica's next restart",
            keys.ids()[1..].join(", ")
        );
    }
    Ok(())
}
