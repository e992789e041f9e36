//! Calling a plugin: one sandboxed instance per rule cycle, a deadline per call.
//!
//! A [`PluginSession`] is what a rule cycle holds while it works through its
//! runs. The first call instantiates the plugin in a fresh store; later calls
//! of the same session reuse that instance, which saves the instantiation
//! (50 µs for Rust, 1-2 ms for Python) on every run of a busy window. State
//! therefore lives for one cycle at most: the next cycle gets a new session.
//!
//! Every call re-arms the epoch deadline, then classifies what came back:
//! `Ok(Ok(..))` is validated against the contract (transform output must be
//! JSON, evaluations must be feedback objects); `Ok(Err(msg))` is the guest
//! declining ([`PluginError::Rejected`]); a trap is a timeout, a memory cap,
//! or a crash, told apart by the trap code and the limiter's flag. After a
//! trap the instance is poisoned, so the session drops it and the next call
//! starts a fresh one: a plugin that fails on one run still gets the next.

use std::sync::Arc;

use serde::Deserialize;
use wasmtime::{Store, Trap};

use super::bindings::{evaluator, matcher, transformer};
use super::engine::PluginEngine;
use super::error::describe;
use super::plugin::{LoadedPlugin, PluginLimits};
use super::sandbox::{LogTag, SandboxState};
use super::{Capability, PluginError};

/// Most feedback entries one evaluation may return.
pub const MAX_EVALUATIONS: usize = 100;

/// One piece of feedback returned by an evaluator, validated.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Evaluation {
    /// The feedback key; non-empty.
    pub key: String,
    /// A numeric score (booleans count as 1 and 0).
    #[serde(default, deserialize_with = "score")]
    pub score: Option<f64>,
    /// A categorical value.
    #[serde(default)]
    pub value: Option<serde_json::Value>,
    /// A human-readable explanation.
    #[serde(default)]
    pub comment: Option<String>,
}

fn score<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Score {
        Number(f64),
        Bool(bool),
    }
    Ok(Option::<Score>::deserialize(d)?.map(|s| match s {
        Score::Number(n) => n,
        Score::Bool(b) => f64::from(u8::from(b)),
    }))
}

struct Live {
    store: Store<SandboxState>,
    matcher: Option<matcher::Guest>,
    transformer: Option<transformer::Guest>,
    evaluator: Option<evaluator::Guest>,
}

/// A plugin instance for the length of one rule cycle.
pub struct PluginSession {
    plugin: Arc<LoadedPlugin>,
    engine: PluginEngine,
    limits: PluginLimits,
    tag: LogTag,
    live: Option<Live>,
}

impl std::fmt::Debug for PluginSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginSession")
            .field("plugin", &self.plugin.name())
            .field("limits", &self.limits)
            .field("live", &self.live.is_some())
            .finish()
    }
}

impl PluginSession {
    /// A session on `plugin`; `context` tags its log lines (a rule id, `cli`).
    /// Nothing is instantiated until the first call.
    pub fn new(engine: &PluginEngine, plugin: Arc<LoadedPlugin>, limits: PluginLimits, context: &str) -> Self {
        let tag = LogTag { plugin: Arc::from(plugin.name()), context: Arc::from(context) };
        Self { plugin, engine: engine.clone(), limits, tag, live: None }
    }

    /// The plugin version this session calls.
    pub fn plugin(&self) -> &Arc<LoadedPlugin> {
        &self.plugin
    }

    /// Creates a new instance now, even if one is live (the benchmark's
    /// "fresh instance" and callers that want no state between calls).
    pub fn reset(&mut self) {
        self.live = None;
    }

    /// Instantiates now if no instance is live (start functions run under
    /// the instantiation budget, see `instantiation_budget`). Calls do this on demand; `plugin check` uses it
    /// to prove the sandbox can host the plugin.
    pub fn instantiate(&mut self) -> Result<(), PluginError> {
        if self.live.is_none() {
            let ticks = self.engine.ticks_for(instantiation_budget(self.limits));
            self.live = Some(instantiate(&self.engine, &self.plugin, &self.tag, self.limits, ticks)?);
        }
        Ok(())
    }

    /// Asks the matcher whether `run` (JSON) matches.
    pub fn matches(&mut self, run: &str, config: &str) -> Result<bool, PluginError> {
        self.call(Capability::Match, |live| match &live.matcher {
            Some(g) => Ok(g.call_matches(&mut live.store, run, config)),
            None => Err(()),
        })
    }

    /// Asks the transformer for the body to deliver instead of `payload`.
    /// The result is checked to be JSON.
    pub fn transform(&mut self, payload: &str, config: &str) -> Result<String, PluginError> {
        let body = self.call(Capability::Transform, |live| match &live.transformer {
            Some(g) => Ok(g.call_transform(&mut live.store, payload, config)),
            None => Err(()),
        })?;
        serde_json::from_str::<serde::de::IgnoredAny>(&body)
            .map_err(|e| self.invalid(Capability::Transform, format!("not JSON: {e}")))?;
        Ok(body)
    }

    /// Asks the evaluator for feedback on `run`; checks each entry.
    pub fn evaluate(&mut self, run: &str, config: &str) -> Result<Vec<Evaluation>, PluginError> {
        let text = self.call(Capability::Evaluate, |live| match &live.evaluator {
            Some(g) => Ok(g.call_evaluate(&mut live.store, run, config)),
            None => Err(()),
        })?;
        let evaluations: Vec<Evaluation> = serde_json::from_str(&text).map_err(|e| {
            self.invalid(
                Capability::Evaluate,
                format!("expected a JSON array of {{key, score?, value?, comment?}}: {e}"),
            )
        })?;
        if evaluations.len() > MAX_EVALUATIONS {
            return Err(self.invalid(
                Capability::Evaluate,
                format!("{} feedback entries; at most {MAX_EVALUATIONS} are allowed", evaluations.len()),
            ));
        }
        if let Some(i) = evaluations.iter().position(|e| e.key.trim().is_empty()) {
            return Err(self.invalid(Capability::Evaluate, format!("entry {i} has an empty key")));
        }
        if let Some(e) = evaluations.iter().find(|e| e.score.is_some_and(|s| !s.is_finite())) {
            return Err(self.invalid(Capability::Evaluate, format!("entry {:?} has a non-finite score", e.key)));
        }
        Ok(evaluations)
    }

    fn invalid(&self, capability: Capability, reason: String) -> PluginError {
        PluginError::InvalidOutput { plugin: self.plugin.name().to_string(), capability, reason }
    }

    /// Runs one export under the deadline and maps every outcome to a
    /// `PluginError`. `f` returns `Err(())` when the export is missing.
    fn call<R>(
        &mut self,
        capability: Capability,
        f: impl FnOnce(&mut Live) -> Result<wasmtime::Result<Result<R, String>>, ()>,
    ) -> Result<R, PluginError> {
        let plugin = self.plugin.name().to_string();
        if !self.plugin.capabilities().contains(capability) {
            return Err(PluginError::NotExported { plugin, capability });
        }
        let live = match &mut self.live {
            Some(live) => live,
            None => {
                let budget = self.engine.ticks_for(instantiation_budget(self.limits));
                self.live.insert(instantiate(&self.engine, &self.plugin, &self.tag, self.limits, budget)?)
            }
        };
        let ticks = self.engine.ticks_for(self.limits.deadline);
        live.store.data_mut().memory_exceeded = false;
        live.store.set_epoch_deadline(ticks);
        let outcome = f(live);
        let last_stderr = live.store.data_mut().flush_output();
        let memory_exceeded = live.store.data().memory_exceeded;
        match outcome {
            Err(()) => Err(PluginError::NotExported { plugin, capability }),
            Ok(Ok(Ok(value))) => Ok(value),
            Ok(Ok(Err(message))) => Err(PluginError::Rejected { plugin, capability, message }),
            Ok(Err(err)) => {
                // A trapped instance cannot be entered again: start afresh next call.
                self.live = None;
                Err(classify(&err, plugin, capability, self.limits, memory_exceeded, last_stderr))
            }
        }
    }
}

fn instantiate(
    engine: &PluginEngine,
    plugin: &LoadedPlugin,
    tag: &LogTag,
    limits: PluginLimits,
    ticks: u64,
) -> Result<Live, PluginError> {
    let mut store = Store::new(engine.engine(), SandboxState::new(tag.clone(), limits.memory_bytes));
    store.limiter(|state| state);
    // Start functions (a Go runtime's init, a Python interpreter's) run under
    // the same deadline as a call.
    store.set_epoch_deadline(ticks);
    let name = plugin.name().to_string();
    let instance = match plugin.pre.instantiate(&mut store) {
        Ok(instance) => instance,
        Err(err) => {
            let last_stderr = store.data_mut().flush_output();
            let exceeded = store.data().memory_exceeded;
            return Err(match classify(&err, name.clone(), Capability::Match, limits, exceeded, last_stderr) {
                e @ (PluginError::Timeout { .. } | PluginError::MemoryLimit { .. }) => e,
                _ => PluginError::Instantiate { plugin: name, reason: describe(&err) },
            });
        }
    };
    let load_err = |e: wasmtime::Error| PluginError::Instantiate { plugin: name.clone(), reason: describe(&e) };
    let ix = &plugin.indices;
    let matcher = ix.matcher.as_ref().map(|i| i.load(&mut store, &instance)).transpose().map_err(load_err)?;
    let transformer = ix.transformer.as_ref().map(|i| i.load(&mut store, &instance)).transpose().map_err(load_err)?;
    let evaluator = ix.evaluator.as_ref().map(|i| i.load(&mut store, &instance)).transpose().map_err(load_err)?;
    Ok(Live { store, matcher, transformer, evaluator })
}

fn classify(
    err: &wasmtime::Error,
    plugin: String,
    capability: Capability,
    limits: PluginLimits,
    memory_exceeded: bool,
    last_stderr: Option<String>,
) -> PluginError {
    if memory_exceeded {
        return PluginError::MemoryLimit { plugin, capability, limit_bytes: limits.memory_bytes };
    }
    match err.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => PluginError::Timeout { plugin, capability, deadline: limits.deadline },
        _ => {
            let mut reason = describe(err);
            if let Some(line) = last_stderr {
                reason.push_str(&format!(" (guest stderr: {line})"));
            }
            PluginError::Trap { plugin, capability, reason }
        }
    }
}

/// The least time instantiation gets, whatever the call deadline: guests
/// that carry a language runtime (Python, JavaScript) start it there, once
/// per rule cycle, and a 100 ms call deadline must not fail them on a busy
/// machine. Calls keep their own deadline.
pub const MIN_INSTANTIATION_BUDGET: std::time::Duration = std::time::Duration::from_secs(1);

fn instantiation_budget(limits: PluginLimits) -> std::time::Duration {
    limits.deadline.max(MIN_INSTANTIATION_BUDGET)
}
