//! The benchmarks' Postgres side: a fresh database per measurement on the
//! server `--postgres URL` names, and the configuration a replica on it
//! gets (the keys every replica shares).

use anyhow::Context;

use runhook_server::config::{Config, DatabaseUrl};

/// A secret key every replica of one measurement shares (benchmarks only).
const SHARED_KEY: &str = "qmfTl2cYjz1sG8kd3Sx1eH1QhP2b1kH2J4p8fQmVZ0c=";

/// Creates an empty database on `server` (a `postgres://` URL of any of
/// its databases); its URL.
pub(crate) fn fresh_database(server: &str) -> anyhow::Result<String> {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_nanos();
    let name = format!("bench_{}_{nanos}", std::process::id());
    let out = std::process::Command::new("psql")
        .arg(server)
        .args(["-qXc", &format!("CREATE DATABASE {name}")])
        .output()
        .context("running psql (PostgreSQL's client)")?;
    anyhow::ensure!(out.status.success(), "cannot create {name}: {}", String::from_utf8_lossy(&out.stderr));
    let base = server.rsplit_once('/').map_or(server, |(base, _)| base);
    Ok(format!("{base}/{name}"))
}

/// `config` as a replica on the database at `url`.
pub(crate) fn replica(config: Config, url: &str) -> anyhow::Result<Config> {
    Ok(Config {
        database: Some(DatabaseUrl::parse(url).map_err(anyhow::Error::msg)?),
        secret_key: Some(SHARED_KEY.into()),
        ..config
    })
}
