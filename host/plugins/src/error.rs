//! What can go wrong with a plugin, one variant per case a caller handles.
//!
//! Load-time variants (`Read` .. `Link`) refuse a plugin; call-time variants
//! (`Timeout` .. `InvalidOutput`) fail one call and leave the plugin usable.
//! Every variant names the plugin, so a message in a rule log is enough to
//! find the culprit.

use std::path::PathBuf;
use std::time::Duration;

use super::Capability;

/// An error loading or calling a plugin.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// The plugin file may not or cannot be read (see [`PluginFiles`](crate::PluginFiles)).
    #[error("plugin {plugin}: {} is not a readable plugin file: {reason}", path.display())]
    Read {
        /// The plugin's name.
        plugin: String,
        /// The file, as given.
        path: PathBuf,
        /// Why, without the file's contents.
        reason: String,
    },
    /// An uploaded plugin's bytes cannot be had (gone, unreachable, or not
    /// the bytes their digest names).
    #[error("plugin {plugin}: uploaded plugin sha256:{digest} cannot be loaded: {reason}")]
    Stored {
        /// The plugin's name.
        plugin: String,
        /// Its SHA-256.
        digest: String,
        /// Why.
        reason: String,
    },
    /// No format is shipped by this name.
    #[error("no format named {name:?} is shipped with runhook (there are: {known})")]
    UnknownBuiltin {
        /// The name asked for.
        name: String,
        /// The names there are.
        known: String,
    },
    /// The file is not a valid WebAssembly component (or failed to compile).
    #[error("plugin {plugin}: not a loadable WebAssembly component: {reason}")]
    Compile {
        /// The plugin's name.
        plugin: String,
        /// wasmtime's explanation, root cause first.
        reason: String,
    },
    /// The component lacks a capability its rule is configured to use.
    #[error(
        "plugin {plugin}: configured for {}, but the component does not export {} (it exports: {provided})",
        missing.iter().map(|c| c.to_string()).collect::<Vec<_>>().join(", "),
        missing.iter().map(|c| format!("runhook:plugin/{}", c.interface())).collect::<Vec<_>>().join(", ")
    )]
    MissingCapability {
        /// The plugin's name.
        plugin: String,
        /// What the rule needs and the plugin lacks.
        missing: Vec<Capability>,
        /// What the plugin exports, for the message.
        provided: String,
    },
    /// The component exports no runhook capability at all.
    #[error(
        "plugin {plugin}: exports no runhook:plugin interface (matcher, transformer or evaluator); exports: {exports}"
    )]
    NoCapability {
        /// The plugin's name.
        plugin: String,
        /// What it does export.
        exports: String,
    },
    /// The component imports something the sandbox does not provide.
    #[error("plugin {plugin}: cannot be linked into the sandbox: {reason}")]
    Link {
        /// The plugin's name.
        plugin: String,
        /// wasmtime's explanation, naming the import.
        reason: String,
    },
    /// A fresh instance could not be created (start function trapped, pool exhausted).
    #[error("plugin {plugin}: instantiation failed: {reason}")]
    Instantiate {
        /// The plugin's name.
        plugin: String,
        /// wasmtime's explanation.
        reason: String,
    },
    /// The call ran past its wall-clock deadline and was interrupted.
    #[error("plugin {plugin}: {capability} call exceeded its deadline of {deadline:?}")]
    Timeout {
        /// The plugin's name.
        plugin: String,
        /// The call.
        capability: Capability,
        /// The deadline in force.
        deadline: Duration,
    },
    /// The instance tried to grow its memory past the cap.
    #[error("plugin {plugin}: {capability} call exceeded the memory cap of {limit_bytes} bytes")]
    MemoryLimit {
        /// The plugin's name.
        plugin: String,
        /// The call.
        capability: Capability,
        /// The cap in force.
        limit_bytes: usize,
    },
    /// The guest trapped (a panic, `unreachable`, an out-of-bounds access ...).
    #[error("plugin {plugin}: {capability} call trapped: {reason}")]
    Trap {
        /// The plugin's name.
        plugin: String,
        /// The call.
        capability: Capability,
        /// The trap and, when the guest wrote one, its last stderr line.
        reason: String,
    },
    /// The guest returned `err(message)`: it declined to answer.
    #[error("plugin {plugin}: {capability} returned an error: {message}")]
    Rejected {
        /// The plugin's name.
        plugin: String,
        /// The call.
        capability: Capability,
        /// The guest's message.
        message: String,
    },
    /// The guest returned something that breaks the contract (not JSON, wrong shape).
    #[error("plugin {plugin}: {capability} returned invalid output: {reason}")]
    InvalidOutput {
        /// The plugin's name.
        plugin: String,
        /// The call.
        capability: Capability,
        /// What is wrong with it.
        reason: String,
    },
    /// The host asked for a capability this plugin does not export.
    #[error("plugin {plugin}: does not export {capability}")]
    NotExported {
        /// The plugin's name.
        plugin: String,
        /// The call.
        capability: Capability,
    },
    /// The compile cache directory could not be used.
    #[error("plugin compile cache at {}: {source}", path.display())]
    Cache {
        /// The cache directory or file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The wasmtime engine could not be created with the given settings.
    #[error("cannot create the WebAssembly engine: {0}")]
    Engine(String),
}

impl PluginError {
    /// A stable, machine-readable name of the variant (for logs, metrics and
    /// JSON reports).
    pub fn kind(&self) -> &'static str {
        match self {
            PluginError::Read { .. } => "read",
            PluginError::Stored { .. } => "stored",
            PluginError::UnknownBuiltin { .. } => "unknown_builtin",
            PluginError::Compile { .. } => "compile",
            PluginError::MissingCapability { .. } => "missing_capability",
            PluginError::NoCapability { .. } => "no_capability",
            PluginError::Link { .. } => "link",
            PluginError::Instantiate { .. } => "instantiate",
            PluginError::Timeout { .. } => "timeout",
            PluginError::MemoryLimit { .. } => "memory_limit",
            PluginError::Trap { .. } => "trap",
            PluginError::Rejected { .. } => "rejected",
            PluginError::InvalidOutput { .. } => "invalid_output",
            PluginError::NotExported { .. } => "not_exported",
            PluginError::Cache { .. } => "cache",
            PluginError::Engine(_) => "engine",
        }
    }

    /// Whether this error refused the plugin at load time (as opposed to
    /// failing one call).
    pub fn is_load_error(&self) -> bool {
        matches!(
            self,
            PluginError::Read { .. }
                | PluginError::Stored { .. }
                | PluginError::Compile { .. }
                | PluginError::MissingCapability { .. }
                | PluginError::NoCapability { .. }
                | PluginError::Link { .. }
                | PluginError::Cache { .. }
                | PluginError::Engine(_)
        )
    }
}

/// Renders a wasmtime error with its whole chain, since its top-level
/// `Display` alone is often just "error while executing at wasm backtrace".
pub(crate) fn describe(err: &wasmtime::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in err.chain() {
        let text = cause.to_string();
        let first = text.lines().next().unwrap_or_default().trim().to_string();
        if !first.is_empty() && !first.starts_with("error while executing at wasm backtrace") && !parts.contains(&first)
        {
            parts.push(first);
        }
    }
    if parts.is_empty() { err.to_string() } else { parts.join(": ") }
}
