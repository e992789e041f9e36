//! Plugins in every language: the Python, JavaScript, C and Go examples
//! decide and score exactly as the Rust examples do, on a corpus of runs and
//! configs (errors included); and `runhook plugin new` projects in each
//! language build with their one command and pass `runhook plugin check`.
//!
//! The examples are built by `plugins/build.sh` (CI and tests/run.sh run it).

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

use runhook_plugins::{
    Capabilities, Capability, CompileCache, EngineSettings, LoadedPlugin, PluginEngine, PluginError, PluginLimits,
    PluginSession,
};
use serde_json::{Value, json};

use crate::common::{plugin, repo, runhook};

const LANGUAGES: [&str; 4] = ["python", "js", "c", "go"];

fn example(lang: &str) -> PathBuf {
    let path = repo().join(format!("plugins/{lang}/example/example.wasm"));
    assert!(path.is_file(), "{} is not built: run plugins/{lang}/build.sh", path.display());
    path
}

fn session(engine: &PluginEngine, name: &str, path: &std::path::Path, caps: Capabilities) -> PluginSession {
    let cache = CompileCache::new(engine, None).unwrap();
    let loaded = LoadedPlugin::load(engine, &cache, name, path, caps).unwrap();
    // The defaults a rule gets: they must suit every language's guest.
    PluginSession::new(engine, Arc::new(loaded), PluginLimits::default(), "languages")
}

fn runs() -> Vec<Value> {
    let base = |run_type: &str, error: Value, outputs: Value| {
        json!({"id": "0193b8f2-4f1c-7a2e-9d3b-6c5e4a3b2c1d", "name": "step", "run_type": run_type,
               "error": error, "inputs": {"question": "q"}, "outputs": outputs, "tags": ["t"], "extra": {}})
    };
    let long = "The capital of France is Paris, which is also its largest city. ".repeat(5);
    vec![
        base("llm", json!("RateLimitError: Rate limit reached for gpt-4o"), json!(null)),
        base("llm", json!("Timeout after 30s"), json!({})),
        base("llm", json!(""), json!({"output": "fine"})),
        base("llm", json!(null), json!({"output": "Paris is the capital of France."})),
        base("chain", json!("boom"), json!({"answer": "I don't know, sorry."})),
        base("tool", json!({"code": 500}), json!({"text": long})),
        base("llm", json!(null), json!({"generations": [[{"text": "généré: ünïcödé ✓ text"}]]})),
        base("chain", json!(null), json!({"zeta": "last by key", "alpha": "first by key", "n": 5})),
        base("chain", json!(null), json!({"n": 5, "list": ["x"]})),
        base("llm", json!(null), json!({"content": "As an AI, I cannot answer."})),
        base("retriever", json!("Connection RESET by peer"), json!({"output": ""})),
    ]
}

fn configs() -> Vec<Value> {
    vec![
        json!(null),
        json!({}),
        json!({"run_types": ["chain", "tool"]}),
        json!({"error_contains": "rate limit"}),
        json!({"run_types": ["llm", "retriever"], "error_contains": "reset"}),
        json!({"run_types": "llm"}),
        json!({"error_contains": 7}),
        json!({"key": "quality", "target_chars": 20}),
        json!({"target_chars": 0}),
        json!({"key": ""}),
        json!({"refusals": ["paris", 3]}),
    ]
}

/// A call's outcome, comparable across languages.
fn outcome<T: std::fmt::Debug>(r: Result<T, PluginError>) -> String {
    match r {
        Ok(v) => format!("ok {v:?}"),
        Err(PluginError::Rejected { message, .. }) => format!("rejected {message}"),
        Err(other) => panic!("the plugin failed instead of answering: {other}"),
    }
}

#[test]
fn every_language_matches_and_scores_like_rust() {
    let engine = PluginEngine::new(&EngineSettings::default()).unwrap();
    let mut rust_match = session(&engine, "llm_errors", &plugin("llm_errors"), Capabilities::of(Capability::Match));
    let mut rust_eval =
        session(&engine, "output_score", &plugin("output_score"), Capabilities::of(Capability::Evaluate));
    let both = Capabilities::of(Capability::Match).with(Capability::Evaluate);
    for lang in LANGUAGES {
        let mut guest = session(&engine, lang, &example(lang), both);
        let (mut selected, mut scored) = (0, 0);
        for run in runs() {
            let run_text = run.to_string();
            for config in configs() {
                let config_text = config.to_string();
                let want = outcome(rust_match.matches(&run_text, &config_text));
                let got = outcome(guest.matches(&run_text, &config_text));
                assert_eq!(got, want, "{lang} matches() differs on run {run} with config {config}");
                selected += usize::from(want == "ok true");
                let want = outcome(rust_eval.evaluate(&run_text, &config_text));
                let got = outcome(guest.evaluate(&run_text, &config_text));
                assert_eq!(got, want, "{lang} evaluate() differs on run {run} with config {config}");
                scored += usize::from(want.starts_with("ok"));
            }
        }
        // The corpus exercises both answers and both kinds of outcome.
        assert!(selected > 5 && scored > 50, "{lang}: {selected} selected, {scored} scored");
    }
}

fn toolchain_path() -> String {
    let tools = repo().join("plugins/.toolchains");
    let mut path = vec![tools.join("py/bin"), tools.join("cargo/bin")];
    path.extend(std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()));
    std::env::join_paths(path).unwrap().to_string_lossy().into_owned()
}

#[test]
fn new_projects_build_and_pass_check_in_every_language() {
    let dir = tempfile::tempdir().unwrap();
    for lang in ["rust", "python", "js", "c", "go"] {
        let name = format!("my-{lang}-plugin");
        let out = runhook().args(["plugin", "new", "--lang", lang, &name, "--dir"]).arg(dir.path()).output().unwrap();
        assert!(out.status.success(), "plugin new --lang {lang}: {}", String::from_utf8_lossy(&out.stderr));
        let root = dir.path().join(&name);
        assert!(root.join("wit/runhook.wit").is_file());
        let built = Command::new(root.join("build.sh"))
            .env("PATH", toolchain_path())
            .env_remove("CARGO_TARGET_DIR")
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_BUILD_TARGET")
            .output()
            .unwrap();
        assert!(
            built.status.success(),
            "{lang} project did not build:\n{}\n{}",
            String::from_utf8_lossy(&built.stdout),
            String::from_utf8_lossy(&built.stderr)
        );
        let wasm = root.join(format!("{name}.wasm"));
        let check = runhook()
            .args(["plugin", "check", "--no-cache", "--require", "match,evaluate"])
            .arg(&wasm)
            .output()
            .unwrap();
        assert!(check.status.success(), "{lang}: {}", String::from_utf8_lossy(&check.stdout));
        // A second `new` on the same name refuses to overwrite.
        let again = runhook().args(["plugin", "new", "--lang", lang, &name, "--dir"]).arg(dir.path()).output().unwrap();
        assert!(!again.status.success());
    }
}

/// A Go instance once crashed in Go's collector after a few hundred calls
/// (its heap grew over the WASI adapter's page); the build now keeps them
/// apart. One instance must serve a whole page of a rule cycle and more.
#[test]
fn a_go_instance_serves_thousands_of_calls() {
    let engine = PluginEngine::new(&EngineSettings::default()).unwrap();
    let both = Capabilities::of(Capability::Match).with(Capability::Evaluate);
    let mut guest = session(&engine, "go", &example("go"), both);
    let run = runs()[0].to_string();
    for i in 0..3000 {
        assert!(guest.matches(&run, "null").unwrap_or_else(|e| panic!("call {i}: {e}")));
        guest.evaluate(&run, "null").unwrap_or_else(|e| panic!("call {i}: {e}"));
    }
}
