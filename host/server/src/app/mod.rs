//! Wires the service together and runs it until shutdown.
//!
//! [`App::prepare`] takes an open store (the `runhook` binary chooses and
//! opens the backend) with its keys, re-seals stored secrets (the
//! embedded store) and settles the API key;
//! [`App::serve`] serves on the given listener until `shutdown` is
//! cancelled, then lets requests in flight finish. `runhook serve` announces
//! its address between the two, so a client that sees the address finds
//! the service ready.
//!
//! Layering: layer 5; may import anything in the crate.

mod keys;

pub use keys::{key_file, load_keys};

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::api::{self, ApiKey, AppState};
use crate::config::Config;
use crate::delivery::{self, NetworkGuard};
use crate::plugins::StoreComponents;
use crate::rules::definition::Definitions;
use crate::rules::pipeline::Engine;
use crate::rules::scheduler;
use runhook_core::secrets::Keyring;
use runhook_plugins::{CompileCache, EngineSettings, PluginEngine, PluginFiles, PluginRegistry};
use runhook_store::{Announcement, Store};

/// A service ready to serve: store open, key settled.
#[derive(Debug)]
pub struct App {
    config: Config,
    state: AppState,
    /// The store's keys, re-read from the key file while serving.
    keys: Keyring,
    /// Held while the app lives: one process per data directory (the
    /// embedded store's; none on a shared database).
    _lock: Option<std::fs::File>,
}

impl App {
    /// Settles the API key and builds the shared state over `store`,
    /// opened by the caller; `lock` is the data directory's lock file (see
    /// [`lock_data_dir`]) when the store lives there, held while the app lives.
    pub async fn prepare(
        config: Config,
        store: Arc<dyn Store>,
        keys: Keyring,
        lock: Option<std::fs::File>,
    ) -> anyhow::Result<Self> {
        // Values sealed under an older key, or stored before encryption
        // existed, are re-sealed under the current one: by the one process
        // of the embedded store (finishing a rotation a crash cut short).
        // On a shared database only `runhook keys rotate` re-seals, once
        // for the cluster, when every replica holds the keys it needs.
        if config.database.is_none() {
            let resealed = store.reseal_secrets().await.context("cannot re-seal stored secrets")?;
            if resealed > 0 {
                tracing::info!(values = resealed, "stored secrets re-sealed under the current key");
            }
        }
        let key = match &config.api_key {
            Some(key) => key.clone(),
            None => stored_api_key(&config.data_dir)?,
        };
        let engine = PluginEngine::new(&EngineSettings {
            epoch_tick: config.plugins.epoch_tick,
            max_instances: config.plugins.max_instances,
            ..EngineSettings::default()
        })?;
        let cache = CompileCache::new(&engine, Some(config.data_dir.join("plugin-cache")))?;
        let signals = store.rule_signals().clone();
        let state = AppState {
            store: store.clone(),
            limits: config.limits,
            key: Arc::new(ApiKey::new(&key)),
            sessions: Arc::new(api::signin::Sessions::new(&key)),
            plugins: Arc::new(
                PluginRegistry::new(
                    engine,
                    cache,
                    PluginFiles::under(&config.plugins.dir, config.plugins.max_file_bytes),
                )
                .with_stored(Arc::new(StoreComponents::new(store.clone()))),
            ),
            max_plugin_bytes: config.plugins.max_file_bytes,
            signals,
            targets: Arc::new(NetworkGuard::from_settings(&config.delivery)),
            metrics: metrics_handle(),
            health: Arc::default(),
            large: (config.delivery.max_inline_io_bytes > 0).then(|| {
                Arc::new(crate::payload::LargeFields {
                    max_bytes: config.delivery.max_inline_io_bytes,
                    lifetime_secs: i64::try_from(config.delivery.io_link_lifetime.as_secs()).unwrap_or(i64::MAX),
                    links: crate::links::Links::new(&key),
                })
            }),
        };
        if !config.rules.is_empty() {
            let definitions =
                Definitions { store: state.store.as_ref(), plugins: &state.plugins, targets: &state.targets };
            let n = definitions
                .apply_config_rules(&config.rules)
                .await
                .map_err(|e| anyhow::anyhow!("config file rules: {e}"))?;
            api::announce(&state, Announcement::RulesChanged).await;
            tracing::info!(rules = n, "rules from the config file applied");
        }
        if !config.alerts.is_empty() {
            let definitions =
                Definitions { store: state.store.as_ref(), plugins: &state.plugins, targets: &state.targets };
            let n = api::alerts::apply_config_alerts(&definitions, &config.alerts)
                .await
                .map_err(|e| anyhow::anyhow!("config file alerts: {e}"))?;
            tracing::info!(alerts = n, "alerts from the config file applied");
        }
        Ok(Self { config, state, keys, _lock: lock })
    }

    /// The shared state (the store, for benchmarks and tools).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` is cancelled, then drains requests in flight,
    /// lets rule cycles in progress commit and deliveries in flight record
    /// their outcome.
    pub async fn serve(self, listener: TcpListener, shutdown: CancellationToken) -> anyhow::Result<()> {
        let state = self.state.clone();
        let workers = CancellationToken::new();
        let replica = scheduler::Replica::this_process(self.config.lease);
        tracing::info!(replica = %replica.name, lease_ms = replica.lease.as_millis() as u64, "replica");
        let engine = Engine {
            large: state.large.clone(),
            pagerduty_url: self.config.delivery.pagerduty_events_url.clone(),
            ..Engine::new(state.store.clone(), state.plugins.clone())
        };
        let scheduler = tokio::spawn(scheduler::run(engine, state.signals.clone(), replica.clone(), workers.clone()));
        let sender = tokio::spawn(delivery::run(state.store.clone(), self.config.delivery.clone(), workers.clone()));
        let alerts = tokio::spawn(crate::alerts::evaluate::run(
            state.store.clone(),
            state.plugins.clone(),
            replica.name.clone(),
            workers.clone(),
        ));
        let retention = match self.config.delivery.retention_days {
            0 => None,
            days => {
                let keep = std::time::Duration::from_secs(u64::from(days) * 86_400);
                let schedule = delivery::retention::Schedule::default();
                let retention = delivery::retention::run(
                    state.store.clone(),
                    replica.name.clone(),
                    keep,
                    schedule,
                    workers.clone(),
                );
                Some(tokio::spawn(retention))
            }
        };
        let watcher = state.plugins.clone().spawn_watcher(self.config.plugins.reload_interval, workers.clone());
        let key_watcher = key_file(&self.config).map(|file| keys::watch(self.keys.clone(), file, workers.clone()));
        if let Some(handle) = state.metrics.clone() {
            // Histograms buffer samples until rendered; drain them even when
            // nobody scrapes.
            let stop = workers.clone();
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        _ = tokio::time::sleep(std::time::Duration::from_secs(5)) => handle.run_upkeep(),
                    }
                }
            });
        }
        let health = tokio::spawn(api::health::sample_loop(state.clone(), workers.clone()));
        let router = api::router(self.state);
        let addr = listener.local_addr().context("listener has no local address")?;
        tracing::info!(%addr, data_dir = %self.config.data_dir.display(), "runhook serving");
        api::listen::serve(listener, router, self.config.limits, shutdown).await;
        workers.cancel();
        for task in [scheduler, sender, alerts, watcher, health].into_iter().chain(retention).chain(key_watcher) {
            let _ = task.await;
        }
        tracing::info!("runhook stopped");
        Ok(())
    }
}

/// The Prometheus recorder's handle. The `metrics` crate records into one
/// process-wide recorder by design; it is installed once, on first use, and
/// every `App` in the process renders the same registry.
pub fn metrics_handle() -> Option<PrometheusHandle> {
    static HANDLE: std::sync::OnceLock<Option<PrometheusHandle>> = std::sync::OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let buckets = [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];
            let builder = PrometheusBuilder::new().set_buckets(&buckets);
            match builder.and_then(PrometheusBuilder::install_recorder) {
                Ok(handle) => Some(handle),
                Err(e) => {
                    tracing::warn!(error = %e, "metrics recorder not installed; /metrics is disabled");
                    None
                }
            }
        })
        .clone()
}

/// Takes the data directory's lock file, so that two processes never share
/// it (and `runhook keys rotate` never runs beside a server).
pub fn lock_data_dir(data_dir: &Path) -> anyhow::Result<std::fs::File> {
    std::fs::create_dir_all(data_dir).with_context(|| format!("cannot create {}", data_dir.display()))?;
    let path = data_dir.join("lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => {
            anyhow::bail!("{} is in use by another runhook process (stop it first)", data_dir.display())
        }
        Err(std::fs::TryLockError::Error(e)) => Err(e).with_context(|| format!("cannot lock {}", path.display())),
    }
}

/// The API key kept in the data directory, generated at first start.
/// The new key is printed once, to stderr, so the operator can copy it.
fn stored_api_key(data_dir: &Path) -> anyhow::Result<String> {
    let path = data_dir.join("api_key");
    match std::fs::read_to_string(&path) {
        Ok(key) if key.trim().len() >= 16 => return Ok(key.trim().to_string()),
        Ok(_) => {
            anyhow::bail!("{} holds no usable key (at least 16 characters); delete it to generate one", path.display())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
    let key = format!("rh_{}", hex::encode(rand::random::<[u8; 24]>()));
    write_private(&path, &key).with_context(|| format!("cannot write {}", path.display()))?;
    eprintln!("runhook: generated an API key, stored in {} (shown only this once):\n\n    {key}\n", path.display());
    Ok(key)
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)?.write_all(contents.as_bytes())
}
