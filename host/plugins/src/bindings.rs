//! The one `bindgen!` over `wit/`: host-side types for the `plugin` world.
//!
//! The host generates bindings for the world with all three capabilities and
//! uses the per-interface pieces (`GuestIndices`) only for the interfaces a
//! component really exports, so a plugin that exports one capability loads
//! without stubs for the others.

wasmtime::component::bindgen!({
    world: "plugin",
    path: "../../wit",
});

pub(crate) use self::exports::runhook::plugin::{evaluator, matcher, transformer};
pub(crate) use self::runhook::plugin::host;

/// The WIT package's identity, as component export names carry it.
pub(crate) const PACKAGE: &str = "runhook:plugin";
