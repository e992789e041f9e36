//! The plugins in use, and hot reload when their files change.
//!
//! A plugin is a file (local development) or a component uploaded to the
//! service's store, read through [`StoredComponents`] and checked against
//! its digest; an uploaded component never changes, so only files are
//! watched. Each plugin in use has one [`PluginHandle`]: the current
//! [`LoadedPlugin`] behind a lock held only to clone or swap an `Arc`. A
//! session clones the `Arc` when it starts, so a swap never disturbs calls in
//! flight: they finish on the version they started with, and the old version
//! is freed when its last session ends.
//!
//! The watcher checks each file's size and modification time every
//! `interval` (a `stat` per plugin; no inotify, so it also works on network
//! and container filesystems and with editors that replace files). A changed
//! file is hashed; a new hash is compiled on a blocking thread, off every hot
//! path, and checked against everything its rules require. Only a version
//! that passes is swapped in; one that fails is logged and the old version
//! stays, and the same bad bytes are not retried until the file changes again.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;

use super::cache::{CompileCache, content_hash};
use super::engine::PluginEngine;
use super::file::PluginFiles;
use super::plugin::{LoadedPlugin, PluginLimits};
use super::session::PluginSession;
use super::{Capabilities, PluginError, PluginLocation};

/// How often the service checks plugin files for changes unless configured.
pub const DEFAULT_RELOAD_INTERVAL: Duration = Duration::from_secs(1);

/// What a rule asks of a plugin.
#[derive(Debug, Clone)]
pub struct PluginSpec {
    /// The name used in logs and errors.
    pub name: String,
    /// The component.
    pub location: PluginLocation,
    /// The capabilities the rule will call.
    pub required: Capabilities,
}

/// Reads uploaded components from the service's store. Blocking: the
/// registry calls it on a blocking thread, once per component and process.
pub trait StoredComponents: Send + Sync + std::fmt::Debug {
    /// The name and bytes of the component whose SHA-256 is `digest`, or
    /// why not.
    fn read(&self, digest: &str) -> Result<(String, Vec<u8>), String>;
}

/// A plugin in use: its current version, swapped on reload.
#[derive(Debug)]
pub struct PluginSlot {
    name: String,
    location: PluginLocation,
    required: Mutex<Capabilities>,
    current: RwLock<Arc<LoadedPlugin>>,
    stamp: Mutex<FileStamp>,
}

/// Shared handle to a plugin in use.
pub type PluginHandle = Arc<PluginSlot>;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct FileStamp {
    len: u64,
    modified: Option<SystemTime>,
    /// Hash of the bytes last seen (loaded or refused).
    hash: String,
}

impl PluginSlot {
    /// The version new sessions get.
    pub fn current(&self) -> Arc<LoadedPlugin> {
        self.current.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// The plugin's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A session on the current version.
    pub fn session(&self, engine: &PluginEngine, limits: PluginLimits, context: &str) -> PluginSession {
        PluginSession::new(engine, self.current(), limits, context)
    }

    fn required(&self) -> Capabilities {
        *self.required.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// What one watcher pass did to a plugin.
#[derive(Debug)]
pub enum ReloadOutcome {
    /// A new version is live.
    Reloaded {
        /// The plugin.
        name: String,
        /// The new version's hash.
        hash: String,
    },
    /// The new file was refused; the old version stays.
    Refused {
        /// The plugin.
        name: String,
        /// Why.
        error: PluginError,
    },
}

/// The plugins in use, keyed by canonical file path or digest.
#[derive(Debug)]
pub struct PluginRegistry {
    engine: PluginEngine,
    cache: CompileCache,
    files: PluginFiles,
    stored: Option<Arc<dyn StoredComponents>>,
    slots: Mutex<HashMap<PluginLocation, PluginHandle>>,
    /// One gate per plugin: concurrent first loads of one compile it once.
    loading: Mutex<HashMap<PluginLocation, Arc<Mutex<()>>>>,
}

impl PluginRegistry {
    /// An empty registry reading plugin files as `files` allows, and no
    /// uploaded plugin.
    pub fn new(engine: PluginEngine, cache: CompileCache, files: PluginFiles) -> Self {
        Self { engine, cache, files, stored: None, slots: Mutex::default(), loading: Mutex::default() }
    }

    /// The same, reading uploaded plugins from `stored`.
    pub fn with_stored(self, stored: Arc<dyn StoredComponents>) -> Self {
        Self { stored: Some(stored), ..self }
    }

    /// The key a plugin in use is known by: a file's canonical path (if it
    /// may be read), or the digest.
    fn key(&self, spec: &PluginSpec) -> Result<PluginLocation, PluginError> {
        match &spec.location {
            PluginLocation::File(path) => Ok(PluginLocation::File(self.files.resolve(&spec.name, path)?)),
            other @ (PluginLocation::Stored(_) | PluginLocation::Builtin(_)) => Ok(other.clone()),
        }
    }

    /// Checks, without compiling, that a plugin file is a component
    /// offering `spec.required` (or that the loaded version does), and
    /// starts loading it on a background thread when it is not loaded yet.
    /// Saving a rule calls this: it answers in milliseconds even for a
    /// Python or JavaScript plugin whose first compilation takes seconds
    /// (and even for a small plugin, whose compilation would queue behind a
    /// large one's on the shared compiler threads); the rule's first cycle
    /// waits for the compilation (see [`load`](Self::load)), and a plugin
    /// that fails to compile or link fails that cycle, with the reason in
    /// the rule's cycle history and the log. An uploaded plugin was probed
    /// when it was uploaded (its capabilities are stored): it is only
    /// loaded in the background.
    pub fn prepare(self: &Arc<Self>, spec: &PluginSpec) -> Result<(), PluginError> {
        let key = self.key(spec)?;
        if self.slot(&key).is_some() {
            return self.load(spec).map(|_| ());
        }
        if let PluginLocation::File(path) = &key {
            let wasm = self.files.read(&spec.name, path)?;
            super::probe::probe(&spec.name, &wasm, spec.required)?;
        }
        let (registry, spec) = (self.clone(), spec.clone());
        std::thread::spawn(move || {
            if let Err(e) = registry.load(&spec) {
                tracing::warn!(plugin = %spec.name, error = %e, "plugin failed to load; its rules will report it");
            }
        });
        Ok(())
    }

    /// The shared engine.
    pub fn engine(&self) -> &PluginEngine {
        &self.engine
    }

    /// Returns the handle for `spec.location`, loading it on first use. A
    /// plugin already in use must also provide `spec.required`, now and
    /// after every reload. Blocking (may read the store, compile, or wait
    /// for a compilation in progress).
    pub fn load(&self, spec: &PluginSpec) -> Result<PluginHandle, PluginError> {
        let key = self.key(spec)?;
        // Whoever comes second waits here for the first compilation, then
        // finds the slot it made.
        let gate = self.loading.lock().unwrap_or_else(PoisonError::into_inner).entry(key.clone()).or_default().clone();
        let _loading = gate.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(slot) = self.slot(&key) {
            let missing = spec.required.missing_from(slot.current().capabilities());
            if !missing.is_empty() {
                return Err(PluginError::MissingCapability {
                    plugin: spec.name.clone(),
                    missing,
                    provided: slot.current().capabilities().to_string(),
                });
            }
            let mut required = slot.required.lock().unwrap_or_else(PoisonError::into_inner);
            *required = required.iter().chain(spec.required.iter()).collect();
            return Ok(slot.clone());
        }
        let (name, bytes, stamp) = match &key {
            PluginLocation::File(path) => {
                let (bytes, stamp) = self.read(&spec.name, path)?;
                (spec.name.clone(), bytes, stamp)
            }
            PluginLocation::Stored(digest) => {
                let (name, bytes) = self.read_stored(&spec.name, digest)?;
                (name, bytes, FileStamp::default())
            }
            PluginLocation::Builtin(format) => {
                let bytes = runhook_formats::component(format)
                    .ok_or_else(|| PluginError::UnknownBuiltin { name: format.clone(), known: builtin_names() })?;
                (format.clone(), bytes.to_vec(), FileStamp::default())
            }
        };
        let plugin = LoadedPlugin::from_bytes(&self.engine, &self.cache, &name, &key, &bytes, spec.required)?;
        log_loaded(&plugin, "loaded");
        let slot = Arc::new(PluginSlot {
            name,
            location: key.clone(),
            required: Mutex::new(spec.required),
            current: RwLock::new(Arc::new(plugin)),
            stamp: Mutex::new(stamp),
        });
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        // Another thread may have loaded the same file meanwhile; keep one.
        Ok(slots.entry(key).or_insert(slot).clone())
    }

    /// An uploaded component's name and bytes, refused unless they are the
    /// bytes `digest` names.
    fn read_stored(&self, name: &str, digest: &str) -> Result<(String, Vec<u8>), PluginError> {
        let refused =
            |reason: String| PluginError::Stored { plugin: name.to_string(), digest: digest.to_string(), reason };
        let stored = self.stored.as_ref().ok_or_else(|| refused("this process reads no uploaded plugins".into()))?;
        let (stored_name, bytes) = stored.read(digest).map_err(refused)?;
        if content_hash(&bytes) != digest {
            return Err(refused("the stored bytes do not match their digest".into()));
        }
        Ok((stored_name, bytes))
    }

    fn slot(&self, key: &PluginLocation) -> Option<PluginHandle> {
        self.slots.lock().unwrap_or_else(PoisonError::into_inner).get(key).cloned()
    }

    /// Checks every plugin file once and reloads the changed ones. Blocking.
    pub fn poll_changes(&self) -> Vec<ReloadOutcome> {
        let slots: Vec<PluginHandle> =
            self.slots.lock().unwrap_or_else(PoisonError::into_inner).values().cloned().collect();
        slots.iter().filter_map(|slot| self.check(slot)).collect()
    }

    fn check(&self, slot: &PluginSlot) -> Option<ReloadOutcome> {
        let PluginLocation::File(path) = &slot.location else { return None };
        let meta = std::fs::metadata(path).ok()?;
        {
            let stamp = slot.stamp.lock().unwrap_or_else(PoisonError::into_inner);
            if stamp.len == meta.len() && stamp.modified == meta.modified().ok() {
                return None;
            }
        }
        // A file being rewritten may be read half-written; that fails to
        // compile, is refused, and the completed write changes the stamp again.
        let (bytes, stamp) = match self.read(&slot.name, path) {
            Ok(read) => read,
            Err(error) => {
                return Some(ReloadOutcome::Refused { name: slot.name.clone(), error });
            }
        };
        let unchanged = slot.stamp.lock().unwrap_or_else(PoisonError::into_inner).hash == stamp.hash;
        *slot.stamp.lock().unwrap_or_else(PoisonError::into_inner) = stamp.clone();
        if unchanged {
            return None;
        }
        match LoadedPlugin::from_bytes(&self.engine, &self.cache, &slot.name, &slot.location, &bytes, slot.required()) {
            Ok(plugin) => {
                log_loaded(&plugin, "reloaded");
                *slot.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(plugin);
                Some(ReloadOutcome::Reloaded { name: slot.name.clone(), hash: stamp.hash })
            }
            Err(error) => {
                tracing::error!(plugin = %slot.name, error = %error, "new plugin version refused; the previous version stays live");
                Some(ReloadOutcome::Refused { name: slot.name.clone(), error })
            }
        }
    }

    fn read(&self, name: &str, path: &Path) -> Result<(Vec<u8>, FileStamp), PluginError> {
        let meta = std::fs::metadata(path).ok();
        let bytes = self.files.read(name, path)?;
        let stamp = FileStamp {
            len: meta.as_ref().map_or(0, |m| m.len()),
            modified: meta.and_then(|m| m.modified().ok()),
            hash: content_hash(&bytes),
        };
        Ok((bytes, stamp))
    }

    /// Polls for changed plugin files every `interval` until `shutdown`.
    pub fn spawn_watcher(
        self: Arc<Self>,
        interval: Duration,
        shutdown: CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = ticker.tick() => {}
                }
                let registry = self.clone();
                if let Err(err) = tokio::task::spawn_blocking(move || registry.poll_changes()).await {
                    tracing::error!(error = %err, "plugin watcher pass failed");
                }
            }
        })
    }
}

/// The shipped formats' names, for errors.
pub fn builtin_names() -> String {
    runhook_formats::names().collect::<Vec<_>>().join(", ")
}

fn log_loaded(plugin: &LoadedPlugin, what: &str) {
    tracing::info!(
        plugin = %plugin.name(),
        hash = %&plugin.hash()[..12],
        capabilities = %plugin.capabilities(),
        from_cache = plugin.origin().is_cache_hit(),
        elapsed_ms = plugin.origin().elapsed().as_secs_f64() * 1e3,
        "plugin {what}"
    );
}
