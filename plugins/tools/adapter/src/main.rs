//! Writes wasmtime 48's WASI preview1 reactor adapter to the path given.
//!
//! C (wasi-libc) and Go (wasip1) compile to core modules importing WASI
//! preview1; `wasm-tools component new --adapt` needs this adapter to turn
//! them into components the runhook host loads. It ships inside a crate
//! wasmtime publishes, so the version matches the host's wasmtime.

use std::process::ExitCode;

fn main() -> ExitCode {
    let Some(path) = std::env::args_os().nth(1) else {
        eprintln!("usage: write-adapter OUT.wasm");
        return ExitCode::from(2);
    };
    let bytes = wasi_preview1_component_adapter_provider::WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER;
    match std::fs::write(&path, bytes) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cannot write {}: {e}", path.to_string_lossy());
            ExitCode::FAILURE
        }
    }
}
