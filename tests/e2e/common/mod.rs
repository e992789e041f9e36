//! Shared helpers: the example plugins (built once per test process) and the
//! `runhook` binary.

pub mod receiver;
pub mod server;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("the repository root")
}

/// Directory of the built plugins. Builds `plugins/rust` for wasm32-wasip2
/// on first use; cargo's own lock serialises concurrent test processes and
/// makes the build a no-op when it is up to date.
pub fn plugins_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let root = repo().join("plugins/rust");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "--release", "--target", "wasm32-wasip2", "--quiet", "--manifest-path"])
            .arg(root.join("Cargo.toml"))
            .arg("--target-dir")
            .arg(root.join("target"))
            // The host's build environment must not leak into the guests'.
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_BUILD_TARGET")
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .status()
            .expect("run cargo to build the plugins");
        assert!(status.success(), "building plugins/rust failed (is the wasm32-wasip2 target installed?)");
        root.join("target/wasm32-wasip2/release")
    })
}

/// Path of a built plugin by crate name (`llm_errors`, `hostile`, ...).
pub fn plugin(name: &str) -> PathBuf {
    let path = plugins_dir().join(format!("{name}.wasm"));
    assert!(path.is_file(), "{} was not built", path.display());
    path
}

/// The `runhook` binary under test.
pub fn runhook() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_runhook"));
    cmd.env_remove("RUNHOOK_PLUGIN_CACHE_DIR").env("NO_COLOR", "1");
    cmd
}

/// A realistic run as the webhook payload carries it.
pub fn run(run_type: &str, error: Option<&str>, answer: &str) -> serde_json::Value {
    serde_json::json!({
        "id": "0193b8f2-4f1c-7a2e-9d3b-6c5e4a3b2c1d",
        "name": "ChatOpenAI",
        "run_type": run_type,
        "start_time": "2026-11-22T10:15:00.000000",
        "end_time": "2026-11-22T10:15:01.234000",
        "status": if error.is_some() { "error" } else { "success" },
        "error": error,
        "inputs": {"messages": [{"role": "user", "content": "Which documents do I need?", "api_key": "sk-secret"}]},
        "outputs": {"output": answer},
        "tags": ["production"],
        "extra": {"metadata": {"user_id": "u-4711"}},
        "feedback_stats": {}
    })
}

/// Expects `status` and a JSON error body whose `detail` contains `needle`.
pub fn expect(resp: reqwest::blocking::Response, status: reqwest::StatusCode, needle: &str) {
    assert_eq!(resp.status(), status, "for a request expected to mention {needle:?}");
    let body: serde_json::Value = resp.json().expect("error bodies are JSON");
    let detail = body["detail"].as_str().unwrap_or_default();
    assert!(detail.contains(needle), "detail {detail:?} does not mention {needle:?}");
}

/// Polls `done` until it holds; fails naming `what` after five minutes (a
/// loaded machine compiling a large guest can take minutes).
pub fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let started = std::time::Instant::now();
    while !done() {
        assert!(started.elapsed().as_secs() < 300, "timed out waiting for {what}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
