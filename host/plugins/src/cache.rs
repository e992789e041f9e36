//! Compiled plugin code, cached on disk so a restart never recompiles.
//!
//! Compiling a component costs 50 ms (Rust) to 15 s (Python); loading the
//! cached machine code costs well under a millisecond to a few. Entries are
//! keyed by the SHA-256 of the `.wasm` bytes and by the engine's
//! compatibility hash (wasmtime version and every codegen setting), so an
//! upgrade or a config change can never load stale code: it simply misses.
//! Entries are written to a temporary file and renamed into place, so a
//! crash leaves either no entry or a whole one; an entry that fails to load
//! anyway is deleted and recompiled.
//!
//! Trust: deserialising compiled code is only safe for files this process
//! (or an earlier run of it) wrote, so the directory is created private
//! (mode 0700) and must not be writable by anyone else.

use std::hash::Hasher;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use wasmtime::component::Component;

use super::PluginError;
use super::engine::PluginEngine;
use super::error::describe;

/// Where a plugin's compiled code came from, and what it cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadOrigin {
    /// Compiled now (cache miss or no cache).
    Compiled {
        /// Time spent compiling.
        elapsed: Duration,
    },
    /// Loaded from the on-disk cache.
    Cache {
        /// Time spent loading.
        elapsed: Duration,
    },
}

impl LoadOrigin {
    /// Whether the code came from the cache.
    pub fn is_cache_hit(self) -> bool {
        matches!(self, LoadOrigin::Cache { .. })
    }

    /// Time spent obtaining the code.
    pub fn elapsed(self) -> Duration {
        match self {
            LoadOrigin::Compiled { elapsed } | LoadOrigin::Cache { elapsed } => elapsed,
        }
    }
}

/// The on-disk cache of compiled components (or none, to always compile).
#[derive(Debug, Clone)]
pub struct CompileCache {
    dir: Option<PathBuf>,
    engine_key: String,
}

impl CompileCache {
    /// A cache in `dir` (created, private) for code compiled by `engine`;
    /// `None` disables caching.
    pub fn new(engine: &PluginEngine, dir: Option<PathBuf>) -> Result<Self, PluginError> {
        if let Some(dir) = &dir {
            create_private_dir(dir).map_err(|source| PluginError::Cache { path: dir.clone(), source })?;
        }
        let mut hasher = ShaHasher(Sha256::new());
        std::hash::Hash::hash(&engine.engine().precompile_compatibility_hash(), &mut hasher);
        let engine_key = hex::encode(&hasher.0.finalize()[..8]);
        Ok(Self { dir, engine_key })
    }

    /// The cache directory, if caching is on.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// The file an entry for `wasm_hash` lives in.
    pub fn entry_path(&self, wasm_hash: &str) -> Option<PathBuf> {
        self.dir.as_ref().map(|d| d.join(format!("{wasm_hash}-{}.cwasm", self.engine_key)))
    }

    /// Returns the compiled component for `wasm`, from the cache when it
    /// holds it, else compiling it now and storing the result.
    pub fn load(
        &self,
        engine: &PluginEngine,
        plugin: &str,
        wasm: &[u8],
        wasm_hash: &str,
    ) -> Result<(Component, LoadOrigin), PluginError> {
        let entry = self.entry_path(wasm_hash);
        if let Some(path) = entry.as_deref().filter(|p| p.is_file()) {
            let started = Instant::now();
            match deserialize(engine, path) {
                Ok(component) => {
                    return Ok((component, LoadOrigin::Cache { elapsed: started.elapsed() }));
                }
                Err(err) => {
                    tracing::warn!(plugin, path = %path.display(), error = %describe(&err), "discarding unusable compile-cache entry");
                    let _ = std::fs::remove_file(path);
                }
            }
        }
        check_is_component(plugin, wasm)?;
        let started = Instant::now();
        let component = Component::new(engine.engine(), wasm)
            .map_err(|e| PluginError::Compile { plugin: plugin.to_string(), reason: describe(&e) })?;
        let origin = LoadOrigin::Compiled { elapsed: started.elapsed() };
        if let Some(path) = entry {
            // A failed write costs a recompile next start, nothing more.
            if let Err(err) = store(&component, &path) {
                tracing::warn!(plugin, path = %path.display(), error = %err, "cannot write compile-cache entry");
            }
        }
        Ok((component, origin))
    }
}

/// The hex SHA-256 of `bytes`: a plugin version's identity.
pub fn content_hash(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[allow(unsafe_code)]
fn deserialize(engine: &PluginEngine, path: &Path) -> wasmtime::Result<Component> {
    // SAFETY: `deserialize_file` trusts its input to be code compiled by a
    // compatible wasmtime. Entries are written only by `store` below, into a
    // private directory, under a name that includes the engine's
    // compatibility hash; wasmtime re-checks that header and refuses
    // mismatches with an error.
    unsafe { Component::deserialize_file(engine.engine(), path) }
}

fn store(component: &Component, path: &Path) -> std::io::Result<()> {
    let bytes = component.serialize().map_err(|e| std::io::Error::other(describe(&e)))?;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// Refuses files that are not components with a message saying what they are.
pub(crate) fn check_is_component(plugin: &str, wasm: &[u8]) -> Result<(), PluginError> {
    let reason = match wasm.get(..8) {
        Some([0, b'a', b's', b'm', 0x0d, 0, 1, 0]) => return Ok(()),
        Some([0, b'a', b's', b'm', 1, 0, 0, 0]) => {
            "this is a core WebAssembly module, not a component: build for wasm32-wasip2, \
             or wrap it with `wasm-tools component new`"
        }
        _ if wasm.starts_with(b"\0asm") => "unsupported WebAssembly binary version",
        _ => "the file does not start with the WebAssembly magic bytes",
    };
    Err(PluginError::Compile { plugin: plugin.to_string(), reason: reason.to_string() })
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
        let mode = std::fs::metadata(dir)?.permissions().mode();
        if mode & 0o022 != 0 {
            return Err(std::io::Error::other(format!(
                "directory is writable by others (mode {:o}); compiled code loaded from it would be untrusted",
                mode & 0o777
            )));
        }
        Ok(())
    }
    #[cfg(not(unix))]
    std::fs::create_dir_all(dir)
}

/// Feeds `Hash` output into SHA-256, for a hash that is stable across runs
/// (unlike `DefaultHasher`, which is randomly keyed).
struct ShaHasher(Sha256);

impl Hasher for ShaHasher {
    fn finish(&self) -> u64 {
        0 // unused: the digest is read from the inner state
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_core_modules_and_garbage_with_a_reason() {
        let core = [0, b'a', b's', b'm', 1, 0, 0, 0];
        let err = check_is_component("p", &core).unwrap_err().to_string();
        assert!(err.contains("core WebAssembly module"), "{err}");
        let err = check_is_component("p", b"#!/bin/sh\n").unwrap_err().to_string();
        assert!(err.contains("magic bytes"), "{err}");
        assert!(check_is_component("p", &[0, b'a', b's', b'm', 0x0d, 0, 1, 0]).is_ok());
    }

    #[test]
    fn content_hash_is_stable_hex() {
        assert_eq!(content_hash(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}
