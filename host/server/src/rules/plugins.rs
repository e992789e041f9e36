//! Where a rule's plugins come from: a [`PluginRef`] as the registry's
//! [`PluginSpec`], and uploaded components read from the store.
//!
//! An uploaded plugin is known by its digest until it is first loaded;
//! from then on by the name it was uploaded with (the registry keeps the
//! name [`StoreComponents`] returns), in logs, errors and the `plugin`
//! metadata of an evaluator's feedback.

use std::sync::Arc;

use runhook_core::model::{PluginDigest, PluginRef, PluginSource};
use runhook_plugins::{Capabilities, Capability, PluginLocation, PluginSpec, StoredComponents, name_from_path};
use runhook_store::Store;

/// What the registry needs to load the plugin `r` names for `cap`.
pub fn spec(r: &PluginRef, cap: Capability) -> PluginSpec {
    let (name, location) = match &r.source {
        PluginSource::Path(path) => (name_from_path(path), PluginLocation::File(path.into())),
        PluginSource::Uploaded(digest) => {
            (format!("sha256:{}", digest.short()), PluginLocation::Stored(digest.as_str().to_string()))
        }
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
