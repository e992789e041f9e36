//! `runhook serve`: load the configuration, bind, run until Ctrl-C or SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use tokio_util::sync::CancellationToken;

use runhook_server::config::{Config, Overrides};

#[derive(Debug, Args)]
pub(super) struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:1984; env RUNHOOK_LISTEN].
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Data directory (database, keys, caches) [default: ./runhook-data; env RUNHOOK_DATA_DIR].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// The Postgres database replicas share (postgres://...) [default: the
    /// embedded store in the data directory; env RUNHOOK_DATABASE_URL].
    #[arg(long)]
    database: Option<String>,
    /// TOML configuration file.
    #[arg(long, env = "RUNHOOK_CONFIG")]
    config: Option<PathBuf>,
}

pub(super) fn run(args: &ServeArgs) -> anyhow::Result<ExitCode> {
    let overrides = Overrides { listen: args.listen, data_dir: args.data_dir.clone(), database: args.database.clone() };
    let config = Config::load(args.config.as_deref(), |k| std::env::var(k).ok(), &overrides)?;
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let app = crate::backend::prepare(config.clone()).await?;
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let addr = listener.local_addr()?;
        // Machine-readable: tests and scripts read the port from this line.
        println!("runhook listening on http://{addr}");
        eprintln!("runhook: the dashboard is at http://{addr}/ (sign in with the API key)");
        let shutdown = CancellationToken::new();
        tokio::spawn(stop_on_signal(shutdown.clone()));
        app.serve(listener, shutdown).await
    })?;
    Ok(ExitCode::SUCCESS)
}

async fn stop_on_signal(shutdown: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(term) => term,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; only Ctrl-C stops the server");
                let _ = ctrl_c.await;
                shutdown.cancel();
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutting down");
    shutdown.cancel();
}
