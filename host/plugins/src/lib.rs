//! runhook's WebAssembly plugin host: loads plugin components and calls them, sandboxed.
//!
//! A plugin is a component built against the `runhook:plugin` WIT package
//! (`wit/runhook.wit`, the single source of truth). It exports any of three
//! capabilities: `matcher`, `transformer`, `evaluator`. This crate turns a
//! `.wasm` file into something the rule engine can call safely, in named
//! phases:
//!
//! 1. **compile** ([`cache`]): the component is compiled once per content
//!    hash and engine, and the machine code is kept on disk, so a restart
//!    never recompiles;
//! 2. **check** ([`plugin`]): its exports tell its capabilities; a plugin that
//!    lacks one its rule needs, or imports something the sandbox does not
//!    offer, is refused here with an error naming the plugin and the gap;
//! 3. **instantiate** ([`session`]): a fresh, sandboxed instance per rule
//!    cycle (see [`sandbox`]: no filesystem, network, environment or
//!    inherited stdio; a memory cap);
//! 4. **call** ([`session`]): each call has a wall-clock deadline enforced by
//!    epoch interruption ([`engine`]); every failure mode (trap, timeout,
//!    memory, rejected, malformed output) is a typed [`PluginError`] for that
//!    call, never a crash of the host.
//!
//! [`registry`] keeps the plugins rules use, and swaps in a new version when a
//! plugin file changes on disk (calls in flight finish on the old one).
//!
//! Layering: this crate depends on nothing else of runhook; the rule engine
//! (`runhook-server`) and the `runhook plugin` commands call it. Being a crate
//! of its own, wasmtime's bindings are compiled once and not again when the
//! API or the store changes.

mod bindings;
pub mod cache;
pub mod engine;
mod error;
pub mod file;
pub mod plugin;
pub mod probe;
pub mod registry;
pub mod sandbox;
pub mod session;

pub use cache::{CompileCache, LoadOrigin};
pub use engine::{EngineSettings, PluginEngine};
pub use error::PluginError;
pub use file::{DEFAULT_MAX_PLUGIN_BYTES, PluginFiles};
pub use plugin::{LoadedPlugin, PluginLimits};
pub use registry::{PluginHandle, PluginRegistry, PluginSlot, PluginSpec, StoredComponents, builtin_names};
pub use session::{Evaluation, PluginSession};

use std::fmt;

/// Where a plugin's component comes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PluginLocation {
    /// A file (reloaded when it changes).
    File(std::path::PathBuf),
    /// Uploaded to the service's store, by its SHA-256 (64 hex digits);
    /// never changes.
    Stored(String),
    /// Shipped inside runhook (a message format), by name; never changes.
    Builtin(String),
}

impl fmt::Display for PluginLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PluginLocation::File(path) => write!(f, "{}", path.display()),
            PluginLocation::Stored(digest) => write!(f, "sha256:{digest}"),
            PluginLocation::Builtin(name) => write!(f, "builtin:{name}"),
        }
    }
}

/// A plugin's name in logs and errors: its file name without the extension.
pub fn name_from_path(path: &str) -> String {
    std::path::Path::new(path).file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| path.to_string())
}

/// One thing a plugin can do for a rule, as exported by its component.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Capability {
    /// Decides whether a run matches (`runhook:plugin/matcher`).
    Match,
    /// Rewrites the webhook payload (`runhook:plugin/transformer`).
    Transform,
    /// Turns a run into feedback (`runhook:plugin/evaluator`).
    Evaluate,
}

impl Capability {
    /// Every capability, in pipeline order.
    pub const ALL: [Capability; 3] = [Capability::Match, Capability::Transform, Capability::Evaluate];

    /// The WIT interface that provides this capability.
    pub fn interface(self) -> &'static str {
        match self {
            Capability::Match => "matcher",
            Capability::Transform => "transformer",
            Capability::Evaluate => "evaluator",
        }
    }

    /// The exported function, for messages.
    pub fn function(self) -> &'static str {
        match self {
            Capability::Match => "matches",
            Capability::Transform => "transform",
            Capability::Evaluate => "evaluate",
        }
    }

    fn bit(self) -> u8 {
        1 << self as u8
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Capability::Match => "match",
            Capability::Transform => "transform",
            Capability::Evaluate => "evaluate",
        })
    }
}

/// A set of capabilities (what a plugin exports, or what a rule needs of it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Capabilities(u8);

impl Capabilities {
    /// No capability.
    pub const NONE: Capabilities = Capabilities(0);

    /// The set holding just `cap`.
    pub fn of(cap: Capability) -> Self {
        Capabilities(cap.bit())
    }

    /// This set with `cap` added.
    pub fn with(self, cap: Capability) -> Self {
        Capabilities(self.0 | cap.bit())
    }

    /// Whether `cap` is in the set.
    pub fn contains(self, cap: Capability) -> bool {
        self.0 & cap.bit() != 0
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The members of `self` that `other` lacks.
    pub fn missing_from(self, other: Capabilities) -> Vec<Capability> {
        self.iter().filter(|c| !other.contains(*c)).collect()
    }

    /// The members, in pipeline order.
    pub fn iter(self) -> impl Iterator<Item = Capability> {
        Capability::ALL.into_iter().filter(move |c| self.contains(*c))
    }
}

impl FromIterator<Capability> for Capabilities {
    fn from_iter<I: IntoIterator<Item = Capability>>(iter: I) -> Self {
        iter.into_iter().fold(Capabilities::NONE, Capabilities::with)
    }
}

impl fmt::Display for Capabilities {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("none");
        }
        let names: Vec<String> = self.iter().map(|c| c.to_string()).collect();
        f.write_str(&names.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capability_sets() {
        let mt = Capabilities::of(Capability::Match).with(Capability::Transform);
        assert!(mt.contains(Capability::Match) && !mt.contains(Capability::Evaluate));
        assert_eq!(
            Capabilities::of(Capability::Evaluate).with(Capability::Match).missing_from(mt),
            vec![Capability::Evaluate]
        );
        assert_eq!(mt.to_string(), "match, transform");
        assert_eq!(Capabilities::NONE.to_string(), "none");
        let all: Capabilities = Capability::ALL.into_iter().collect();
        assert!(Capabilities::NONE.missing_from(all).is_empty());
    }
}
