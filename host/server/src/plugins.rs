//! Where the plugins of rules and alerts come from, and how they are called: a
//! [`PluginRef`] as the registry's [`PluginSpec`], uploaded components read
//! from the store, a plugin loaded ([`load`]) and called on a batch of
//! inputs on a blocking thread ([`call_each`], which rules, trials and
//! alerts' message formats share).
//!
//! An uploaded plugin is known by its digest until it is first loaded;
//! from then on by the name it was uploaded with (the registry keeps the
//! name [`StoreComponents`] returns), in logs, errors and the `plugin`
//! metadata of an evaluator's feedback.
//!
//! Layering: layer 2; imports the crates below only.

use std::sync::Arc;
use std::time::Duration;

use runhook_core::model::{PluginDigest, PluginRef, PluginSource, WebhookTarget};
use runhook_plugins::{
    Capabilities, Capability, PluginError, PluginHandle, PluginLimits, PluginLocation, PluginRegistry, PluginSession,
    PluginSpec, StoredComponents, name_from_path,
};
use runhook_store::Store;

/// Why a plugin could not be loaded or called at all (a call that fails
/// is a result, not this).
#[derive(Debug, thiserror::Error)]
pub enum PluginCallError {
    /// It could not be loaded.
    #[error(transparent)]
    Plugin(#[from] PluginError),
    /// The worker thread died.
    #[error("plugin worker failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// What the registry needs to load the plugin `r` names for `cap`.
pub fn spec(r: &PluginRef, cap: Capability) -> PluginSpec {
    let (name, location) = match &r.source {
        PluginSource::Path(path) => (name_from_path(path), PluginLocation::File(path.into())),
        PluginSource::Uploaded(digest) => {
            (format!("sha256:{}", digest.short()), PluginLocation::Stored(digest.as_str().to_string()))
        }
        PluginSource::Builtin(name) => (name.clone(), PluginLocation::Builtin(name.clone())),
    };
    PluginSpec { name, location, required: Capabilities::of(cap) }
}

/// Uploaded components, read from the store on the runtime `runtime`
/// (called on blocking threads, which may wait on it).
#[derive(Debug)]
pub struct StoreComponents {
    store: Arc<dyn Store>,
    runtime: tokio::runtime::Handle,
}

impl StoreComponents {
    /// Reads through `store`, on the current runtime.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store, runtime: tokio::runtime::Handle::current() }
    }
}

impl StoredComponents for StoreComponents {
    fn read(&self, digest: &str) -> Result<(String, Vec<u8>), String> {
        let digest: PluginDigest = digest.parse()?;
        self.runtime.block_on(async {
            let record = self.store.get_plugin(&digest).await.map_err(|e| e.to_string())?;
            let bytes = self.store.plugin_bytes(&digest).await.map_err(|e| e.to_string())?;
            match (record, bytes) {
                (Some(record), Some(bytes)) => Ok((record.name, bytes)),
                _ => Err("it is not stored (deleted?)".to_string()),
            }
        })
    }
}

/// Loads (or finds) the plugin a rule uses for `cap`.
pub async fn load(
    plugins: &Arc<PluginRegistry>,
    r: &Option<PluginRef>,
    cap: Capability,
) -> Result<Option<(PluginHandle, PluginRef)>, PluginCallError> {
    let Some(r) = r.clone() else { return Ok(None) };
    let registry = plugins.clone();
    let spec = spec(&r, cap);
    let handle = tokio::task::spawn_blocking(move || registry.load(&spec)).await??;
    Ok(Some((handle, r)))
}

/// The limits a rule gives a plugin.
fn limits(r: &PluginRef) -> PluginLimits {
    let d = PluginLimits::default();
    PluginLimits {
        deadline: r.deadline_ms.map_or(d.deadline, Duration::from_millis),
        memory_bytes: r.memory_mib.map_or(d.memory_bytes, |m| m << 20),
    }
}

/// Calls one capability (`call`, a `PluginSession` method) on each input
/// on a blocking thread, with one instance for the whole batch (a fresh
/// instance per rule cycle page); `context` (the rule's or alert's id)
/// tags the plugin's log lines.
pub async fn call_each<R: Send + 'static>(
    plugins: &Arc<PluginRegistry>,
    (handle, r): &(PluginHandle, PluginRef),
    context: &str,
    texts: Vec<String>,
    cap: Capability,
    call: fn(&mut PluginSession, &str, &str) -> Result<R, PluginError>,
) -> Result<Vec<Result<R, PluginError>>, PluginCallError> {
    if texts.is_empty() {
        return Ok(Vec::new());
    }
    let config = r.config.to_string();
    let engine = plugins.engine().clone();
    let handle = handle.clone();
    let limits = limits(r);
    let context = context.to_string();
    Ok(tokio::task::spawn_blocking(move || {
        let mut session = handle.session(&engine, limits, &context);
        let name = handle.name().to_string();
        // Metric handles are looked up once per batch; recording is then an
        // atomic add, far below a plugin call's own cost.
        let duration =
            metrics::histogram!("runhook_plugin_call_duration_seconds", "plugin" => name.clone(), "capability" => cap.to_string());
        let results: Vec<Result<R, PluginError>> = texts
            .iter()
            .map(|t| {
                let started = std::time::Instant::now();
                let r = call(&mut session, t, &config);
                duration.record(started.elapsed().as_secs_f64());
                r
            })
            .collect();
        let mut by_outcome: std::collections::BTreeMap<&'static str, u64> = Default::default();
        for r in &results {
            *by_outcome.entry(r.as_ref().map_or_else(PluginError::kind, |_| "ok")).or_default() += 1;
        }
        for (outcome, n) in by_outcome {
            metrics::counter!("runhook_plugin_calls_total", "plugin" => name.clone(), "capability" => cap.to_string(), "outcome" => outcome)
                .increment(n);
        }
        results
    })
    .await?)
}

/// The message format of each of `webhooks`, loaded, by position.
pub async fn load_formats(
    plugins: &Arc<PluginRegistry>,
    webhooks: &[WebhookTarget],
) -> Result<Vec<Option<(PluginHandle, PluginRef)>>, PluginCallError> {
    let mut formats = Vec::with_capacity(webhooks.len());
    for w in webhooks {
        formats.push(load(plugins, &w.format, Capability::Transform).await?);
    }
    Ok(formats)
}

/// Each of `bodies` in each webhook's format (the body as is for a webhook
/// without one): `[webhook][body]`.
pub async fn format_each(
    plugins: &Arc<PluginRegistry>,
    formats: &[Option<(PluginHandle, PluginRef)>],
    context: &str,
    bodies: &[String],
) -> Result<Vec<Vec<Result<String, PluginError>>>, PluginCallError> {
    let mut out = Vec::with_capacity(formats.len());
    for format in formats {
        out.push(match format {
            Some(f) => {
                call_each(plugins, f, context, bodies.to_vec(), Capability::Transform, PluginSession::transform).await?
            }
            None => bodies.iter().cloned().map(Ok).collect(),
        });
    }
    Ok(out)
}
