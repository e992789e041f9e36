//! `runhook keys rotate`: seal every stored secret under a new key.
//!
//! With a key file: a new key is put first in the file (the old ones kept),
//! every URL, header value and signing secret is re-sealed under it, then
//! the old keys are dropped from the file. A crash in between leaves a file
//! with both keys, and the next start finishes the re-sealing. With
//! `RUNHOOK_SECRET_KEY`, the operator puts the new key first in the
//! variable; this command re-seals under it and says which keys may go.
//! The server must be stopped: the data directory's lock is taken.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

use runhook_core::secrets::{KEY_FILE, Keyring};
use runhook_server::app::{load_keys, lock_data_dir};
use runhook_server::config::{Config, Overrides};

#[derive(Debug, Subcommand)]
pub(super) enum KeysCommand {
    /// Generate a new key and re-seal every stored secret under it (server stopped).
    Rotate(KeysArgs),
}

#[derive(Debug, Args)]
pub(super) struct KeysArgs {
    /// Data directory [default: ./runhook-data; env RUNHOOK_DATA_DIR].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// TOML configuration file.
    #[arg(long, env = "RUNHOOK_CONFIG")]
    config: Option<PathBuf>,
}

pub(super) fn run(cmd: KeysCommand) -> anyhow::Result<ExitCode> {
    let KeysCommand::Rotate(args) = cmd;
    let overrides = Overrides { data_dir: args.data_dir.clone(), ..Overrides::default() };
    let config = Config::load(args.config.as_deref(), |k| std::env::var(k).ok(), &overrides)?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(rotate(&config))?;
    Ok(ExitCode::SUCCESS)
}

async fn reseal(config: &Config, keys: Keyring) -> anyhow::Result<usize> {
    let store = crate::backend::open_store(config, keys).await?;
    Ok(store.reseal_secrets().await?)
}

async fn rotate(config: &Config) -> anyhow::Result<()> {
    // Replicas that know only the old key could not open values re-sealed
    // under a new one: rotation on a shared database needs every replica to
    // know both keys first, which this command cannot see to.
    anyhow::ensure!(
        config.database.is_none(),
        "keys rotate works on the embedded store only. On a shared database, restart the replicas one by one \
         with the new key added after the current one in RUNHOOK_SECRET_KEY (then every replica opens both), \
         then again with the new key first: the first to restart re-seals everything under it"
    );
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
