//! The one wasmtime `Engine` every plugin shares, its epoch ticker and linker.
//!
//! One engine means one code cache, one pooling allocator and one clock for
//! deadlines. Deadlines use epoch interruption: a single background thread
//! bumps the engine's epoch every `epoch_tick`, and each call arms its store
//! with the number of ticks its deadline allows, so a runaway guest traps
//! within one tick of its deadline at a cost of a few percent of guest speed
//! (fuel costs more and is not wall-clock). The ticker holds only a weak
//! reference and stops when the engine is dropped.
//!
//! The linker offers exactly what the sandbox allows: WASI p2 over an empty
//! context (see [`super::sandbox`]) and the `runhook:plugin/host` import.

use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::{HasSelf, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, OptLevel, PoolingAllocationConfig};

use super::PluginError;
use super::bindings::host;
use super::sandbox::SandboxState;

/// Settings for the shared engine, validated by [`PluginEngine::new`].
#[derive(Debug, Clone)]
pub struct EngineSettings {
    /// How often the epoch advances: the granularity of call deadlines.
    pub epoch_tick: Duration,
    /// Whether to pre-reserve instance slots (faster instantiation). Falls
    /// back to on-demand allocation, with a warning, where the machine
    /// refuses the reservation.
    pub pooling: bool,
    /// How many plugin instances may be alive at once (pooling slots).
    pub max_instances: u32,
}

impl Default for EngineSettings {
    fn default() -> Self {
        Self { epoch_tick: Duration::from_millis(10), pooling: true, max_instances: 256 }
    }
}

/// The shared engine plus the linker every plugin is instantiated with.
///
/// Cloning is cheap and shares the engine.
#[derive(Clone)]
pub struct PluginEngine {
    engine: Engine,
    linker: Arc<Linker<SandboxState>>,
    epoch_tick: Duration,
    pooling: bool,
}

impl std::fmt::Debug for PluginEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginEngine")
            .field("epoch_tick", &self.epoch_tick)
            .field("pooling", &self.pooling)
            .finish_non_exhaustive()
    }
}

impl PluginEngine {
    /// Builds the engine, starts the epoch ticker and prepares the linker.
    pub fn new(settings: &EngineSettings) -> Result<Self, PluginError> {
        if settings.epoch_tick.is_zero() || settings.epoch_tick > Duration::from_secs(1) {
            return Err(PluginError::Engine(format!(
                "epoch tick must be between 1 ns and 1 s, got {:?}",
                settings.epoch_tick
            )));
        }
        let (engine, pooling) = if settings.pooling {
            match Engine::new(&config(Some(settings.max_instances))) {
                Ok(engine) => (engine, true),
                Err(err) => {
                    tracing::warn!(error = %err, "pooling allocator unavailable; using on-demand instance allocation");
                    (build(&config(None))?, false)
                }
            }
        } else {
            (build(&config(None))?, false)
        };
        spawn_ticker(&engine, settings.epoch_tick)?;
        let linker = linker(&engine)?;
        Ok(Self { engine, linker: Arc::new(linker), epoch_tick: settings.epoch_tick, pooling })
    }

    /// The wasmtime engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The linker holding everything a plugin may import.
    pub(crate) fn linker(&self) -> &Linker<SandboxState> {
        &self.linker
    }

    /// The deadline granularity.
    pub fn epoch_tick(&self) -> Duration {
        self.epoch_tick
    }

    /// Whether instances come from the pooling allocator.
    pub fn pooling(&self) -> bool {
        self.pooling
    }

    /// Epoch ticks to arm for `deadline`. The ticker's phase is arbitrary,
    /// so the first tick may come at once: one extra tick makes the trap land
    /// between `deadline` and `deadline + epoch_tick`, never before.
    pub(crate) fn ticks_for(&self, deadline: Duration) -> u64 {
        let tick = self.epoch_tick.as_nanos().max(1);
        let ticks = deadline.as_nanos().div_ceil(tick);
        u64::try_from(ticks).unwrap_or(u64::MAX - 1).max(1) + 1
    }
}

fn build(config: &Config) -> Result<Engine, PluginError> {
    Engine::new(config).map_err(|e| PluginError::Engine(super::error::describe(&e)))
}

fn config(pool_slots: Option<u32>) -> Config {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    config.cranelift_opt_level(OptLevel::Speed);
    config.parallel_compilation(true);
    if let Some(slots) = pool_slots {
        let mut pool = PoolingAllocationConfig::default();
        // A component holds several core instances, memories and tables
        // (guest, WASI adapter, libc shims); size the pools for that.
        pool.total_component_instances(slots)
            .total_core_instances(slots.saturating_mul(4))
            .total_memories(slots.saturating_mul(2))
            .total_tables(slots.saturating_mul(4))
            .total_stacks(slots);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    config
}

fn spawn_ticker(engine: &Engine, tick: Duration) -> Result<(), PluginError> {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("runhook-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(tick);
            }
        })
        .map(|_| ())
        .map_err(|e| PluginError::Engine(format!("cannot start the epoch ticker thread: {e}")))
}

fn linker(engine: &Engine) -> Result<Linker<SandboxState>, PluginError> {
    let mut linker = Linker::new(engine);
    // Do not call `define_unknown_imports_as_traps` here: after WASI it breaks
    // guests that import WASI 0.2.12 resources (see wasm-plugins.md). A guest
    // importing something we do not offer is refused at load instead, which
    // is the clearer outcome anyway.
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(|e| PluginError::Engine(super::error::describe(&e)))?;
    host::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| state)
        .map_err(|e| PluginError::Engine(super::error::describe(&e)))?;
    Ok(linker)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_round_up_and_add_one_tick() {
        let engine = PluginEngine::new(&EngineSettings { pooling: false, ..EngineSettings::default() }).unwrap();
        assert_eq!(engine.ticks_for(Duration::from_millis(100)), 11);
        assert_eq!(engine.ticks_for(Duration::from_millis(101)), 12);
        assert_eq!(engine.ticks_for(Duration::from_nanos(1)), 2);
        assert_eq!(engine.ticks_for(Duration::ZERO), 2);
    }

    #[test]
    fn refuses_an_unusable_tick() {
        let settings = EngineSettings { epoch_tick: Duration::ZERO, ..EngineSettings::default() };
        assert!(matches!(PluginEngine::new(&settings), Err(PluginError::Engine(_))));
    }
}
