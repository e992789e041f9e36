//! One loaded plugin version: compiled, checked, and ready to instantiate.
//!
//! Loading reads the file, obtains compiled code from the [`CompileCache`],
//! reads the component's exports to learn its capabilities, refuses it if it
//! lacks one that is required, and pre-links it (`InstancePre`) so that each
//! later instantiation does no name resolution. A [`LoadedPlugin`] is
//! immutable; a new file version is a new `LoadedPlugin`.

use std::path::Path;
use std::time::Duration;

use wasmtime::component::{Component, InstancePre};

use super::bindings::{evaluator, matcher, transformer};
use super::cache::{CompileCache, LoadOrigin, content_hash};
use super::engine::PluginEngine;
use super::error::describe;
use super::sandbox::SandboxState;
use super::{Capabilities, Capability, PluginError, PluginLocation};

/// Per-use limits of a plugin: what one call and one instance may consume.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PluginLimits {
    /// Wall-clock budget of one call (instantiation has the same budget).
    pub deadline: Duration,
    /// The most linear memory one instance may hold, in bytes.
    pub memory_bytes: usize,
}

impl PluginLimits {
    /// The default call deadline.
    pub const DEFAULT_DEADLINE: Duration = Duration::from_millis(100);
    /// The default memory cap: 64 MiB.
    pub const DEFAULT_MEMORY_BYTES: usize = 64 << 20;
}

impl Default for PluginLimits {
    fn default() -> Self {
        Self { deadline: Self::DEFAULT_DEADLINE, memory_bytes: Self::DEFAULT_MEMORY_BYTES }
    }
}

/// Export indices of the capabilities a component provides.
#[derive(Clone)]
pub(crate) struct Exports {
    pub(crate) matcher: Option<matcher::GuestIndices>,
    pub(crate) transformer: Option<transformer::GuestIndices>,
    pub(crate) evaluator: Option<evaluator::GuestIndices>,
}

/// A compiled, checked, pre-linked plugin version.
pub struct LoadedPlugin {
    name: String,
    location: PluginLocation,
    hash: String,
    size: usize,
    capabilities: Capabilities,
    imports: Vec<String>,
    exports: Vec<String>,
    origin: LoadOrigin,
    pub(crate) pre: InstancePre<SandboxState>,
    pub(crate) indices: Exports,
}

impl std::fmt::Debug for LoadedPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedPlugin")
            .field("name", &self.name)
            .field("hash", &self.hash)
            .field("capabilities", &self.capabilities)
            .finish_non_exhaustive()
    }
}

impl LoadedPlugin {
    /// Loads the component at `path`, requiring `required` capabilities.
    ///
    /// Blocking: reading and (on a cache miss) compiling can take seconds for
    /// large guests, so async callers run this on a blocking thread.
    pub fn load(
        engine: &PluginEngine,
        cache: &CompileCache,
        name: &str,
        path: &Path,
        required: Capabilities,
    ) -> Result<Self, PluginError> {
        let wasm = crate::PluginFiles::anywhere(crate::DEFAULT_MAX_PLUGIN_BYTES).read(name, path)?;
        Self::from_bytes(engine, cache, name, &PluginLocation::File(path.to_path_buf()), &wasm, required)
    }

    /// Loads a component from bytes already read from `location`.
    pub fn from_bytes(
        engine: &PluginEngine,
        cache: &CompileCache,
        name: &str,
        location: &PluginLocation,
        wasm: &[u8],
        required: Capabilities,
    ) -> Result<Self, PluginError> {
        let hash = content_hash(wasm);
        let (component, origin) = cache.load(engine, name, wasm, &hash)?;
        let (capabilities, exports, imports) = inspect(engine, &component);
        super::probe::check(name, &exports, capabilities, required)?;
        let link_err = |e: wasmtime::Error| PluginError::Link { plugin: name.to_string(), reason: describe(&e) };
        let pre = engine.linker().instantiate_pre(&component).map_err(link_err)?;
        let indices = Exports {
            matcher: index(capabilities, Capability::Match, || matcher::GuestIndices::new(&pre)).map_err(link_err)?,
            transformer: index(capabilities, Capability::Transform, || transformer::GuestIndices::new(&pre))
                .map_err(link_err)?,
            evaluator: index(capabilities, Capability::Evaluate, || evaluator::GuestIndices::new(&pre))
                .map_err(link_err)?,
        };
        Ok(Self {
            name: name.to_string(),
            location: location.clone(),
            hash,
            size: wasm.len(),
            capabilities,
            imports,
            exports,
            origin,
            pre,
            indices,
        })
    }

    /// The plugin's name, used in every log line and error.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Where it was loaded from.
    pub fn location(&self) -> &PluginLocation {
        &self.location
    }

    /// Hex SHA-256 of the component: this version's identity.
    pub fn hash(&self) -> &str {
        &self.hash
    }

    /// Size of the `.wasm` file in bytes.
    pub fn size(&self) -> usize {
        self.size
    }

    /// What the component exports.
    pub fn capabilities(&self) -> Capabilities {
        self.capabilities
    }

    /// Names of the component's imports (for `plugin check`).
    pub fn imports(&self) -> &[String] {
        &self.imports
    }

    /// Names of the component's exports (for `plugin check`).
    pub fn exports(&self) -> &[String] {
        &self.exports
    }

    /// Whether the code was compiled now or came from the cache.
    pub fn origin(&self) -> LoadOrigin {
        self.origin
    }
}

fn index<T>(
    caps: Capabilities,
    cap: Capability,
    new: impl FnOnce() -> wasmtime::Result<T>,
) -> wasmtime::Result<Option<T>> {
    if caps.contains(cap) { new().map(Some) } else { Ok(None) }
}

/// Reads capabilities from export names such as `runhook:plugin/matcher@0.1.0`.
/// Any 0.1.x version counts, as semver promises.
fn inspect(engine: &PluginEngine, component: &Component) -> (Capabilities, Vec<String>, Vec<String>) {
    let ty = component.component_type();
    let exports: Vec<String> = ty.exports(engine.engine()).map(|(name, _)| name.to_string()).collect();
    let imports: Vec<String> = ty.imports(engine.engine()).map(|(name, _)| name.to_string()).collect();
    let capabilities = super::probe::capabilities_of(exports.iter().map(String::as_str));
    (capabilities, exports, imports)
}
