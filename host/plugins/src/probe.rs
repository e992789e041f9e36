//! What a component file offers, read without compiling it.
//!
//! Compiling a large guest (a Python or JavaScript runtime) takes seconds;
//! saving a rule must not wait for that. [`probe`] parses only the
//! component's top-level export names, in milliseconds, so the rules API can
//! refuse a file that is not a component or lacks a capability at once, and
//! leave the compilation to a background thread (see
//! [`PluginRegistry::prepare`](super::PluginRegistry::prepare)).

use super::bindings::PACKAGE;
use super::{Capabilities, Capability, PluginError};

/// The runhook capabilities among a component's export names.
pub fn capabilities_of<'a>(exports: impl IntoIterator<Item = &'a str>) -> Capabilities {
    exports
        .into_iter()
        .filter_map(|name| {
            let (iface, version) = name.split_once('@')?;
            let (package, iface) = iface.rsplit_once('/')?;
            if package != PACKAGE || !version.starts_with("0.1.") {
                return None;
            }
            Capability::ALL.into_iter().find(|c| c.interface() == iface)
        })
        .collect()
}

/// The export names of the component in `wasm`; an error when it is not a
/// component (a core module, or not WebAssembly).
pub fn component_exports(name: &str, wasm: &[u8]) -> Result<Vec<String>, PluginError> {
    use wasmparser::{Encoding, Parser, Payload};
    // Checked first so that no parser message quotes the file's first bytes.
    super::cache::check_is_component(name, wasm)?;
    let bad = |reason: String| PluginError::Compile { plugin: name.to_string(), reason };
    let mut exports = Vec::new();
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(wasm) {
        match payload.map_err(|e| bad(e.to_string()))? {
            Payload::Version { encoding: Encoding::Module, .. } if depth == 0 => {
                return Err(bad("this is a core WebAssembly module, not a component; wrap it with \
                                `wasm-tools component new` (see the README's plugin guide)"
                    .into()));
            }
            Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => depth += 1,
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentExportSection(reader) if depth == 0 => {
                for export in reader {
                    exports.push(export.map_err(|e| bad(e.to_string()))?.name.name.to_string());
                }
            }
            _ => {}
        }
    }
    Ok(exports)
}

/// Checks that `wasm` is a component exporting every capability in
/// `required`. Fast: nothing is compiled.
pub fn probe(name: &str, wasm: &[u8], required: Capabilities) -> Result<Capabilities, PluginError> {
    let exports = component_exports(name, wasm)?;
    let capabilities = capabilities_of(exports.iter().map(String::as_str));
    check(name, &exports, capabilities, required)?;
    Ok(capabilities)
}

/// Refuses a component that offers no capability, or not all of `required`.
pub fn check(
    name: &str,
    exports: &[String],
    capabilities: Capabilities,
    required: Capabilities,
) -> Result<(), PluginError> {
    if capabilities.is_empty() {
        return Err(PluginError::NoCapability {
            plugin: name.to_string(),
            exports: if exports.is_empty() { "nothing".into() } else { exports.join(", ") },
        });
    }
    let missing = required.missing_from(capabilities);
    if !missing.is_empty() {
        return Err(PluginError::MissingCapability {
            plugin: name.to_string(),
            missing,
            provided: capabilities.to_string(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_core_modules_and_non_wasm() {
        let core = b"\0asm\x01\0\0\0";
        let err = component_exports("m", core).unwrap_err().to_string();
        assert!(err.contains("core WebAssembly module") && err.contains("wasm-tools component new"), "{err}");
        assert!(component_exports("x", b"not wasm at all").is_err());
    }

    #[test]
    fn reads_capabilities_from_export_names() {
        let caps =
            capabilities_of(["runhook:plugin/matcher@0.1.0", "runhook:plugin/evaluator@0.1.3", "other:x/y@1.0.0"]);
        assert!(caps.contains(Capability::Match) && caps.contains(Capability::Evaluate));
        assert!(!caps.contains(Capability::Transform));
        assert!(capabilities_of(["runhook:plugin/matcher@0.2.0"]).is_empty());
        let none = check("p", &[], Capabilities::default(), Capabilities::of(Capability::Match)).unwrap_err();
        assert!(none.to_string().contains("exports: nothing"), "{none}");
    }
}
