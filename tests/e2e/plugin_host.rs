//! The plugin host through its library API: capabilities, the sandbox's
//! limits and failure modes, concurrency, and hot reload.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use runhook_plugins::registry::ReloadOutcome;
use runhook_plugins::{
    Capabilities, Capability, CompileCache, EngineSettings, LoadedPlugin, PluginEngine, PluginError, PluginFiles,
    PluginLimits, PluginLocation, PluginRegistry, PluginSession, PluginSpec,
};
use tokio_util::sync::CancellationToken;

use crate::common::{plugin, run};

fn engine() -> PluginEngine {
    PluginEngine::new(&EngineSettings::default()).unwrap()
}

fn load(engine: &PluginEngine, name: &str, required: Capabilities) -> Result<LoadedPlugin, PluginError> {
    LoadedPlugin::load(engine, &CompileCache::new(engine, None).unwrap(), name, &plugin(name), required)
}

fn session(engine: &PluginEngine, name: &str, cap: Capability) -> PluginSession {
    let loaded = load(engine, name, Capabilities::of(cap)).unwrap();
    PluginSession::new(engine, Arc::new(loaded), PluginLimits::default(), "test")
}

fn json(v: &serde_json::Value) -> String {
    serde_json::to_string(v).unwrap()
}

/// The matcher example selects exactly the LLM runs that errored, and honours its config.
#[test]
fn matcher_selects_errored_llm_runs() {
    let engine = engine();
    let mut s = session(&engine, "llm_errors", Capability::Match);
    assert!(s.matches(&json(&run("llm", Some("RateLimitError: slow down"), "")), "null").unwrap());
    assert!(!s.matches(&json(&run("llm", None, "fine")), "null").unwrap());
    assert!(!s.matches(&json(&run("chain", Some("boom"), "")), "null").unwrap());
    assert!(s.matches(&json(&run("chain", Some("boom"), "")), r#"{"run_types": ["chain"]}"#).unwrap());
    let cfg = r#"{"error_contains": "rate limit"}"#;
    assert!(s.matches(&json(&run("llm", Some("Rate Limit reached"), "")), cfg).unwrap());
    assert!(!s.matches(&json(&run("llm", Some("timeout"), "")), cfg).unwrap());
    // A config the plugin does not understand is the plugin declining, with its message.
    let err = s.matches(&json(&run("llm", Some("x"), "")), r#"{"run_types": "llm"}"#).unwrap_err();
    assert!(matches!(&err, PluginError::Rejected { message, .. } if message.contains("run_types")), "{err}");
}

/// The transformer example redacts the configured keys at any depth and leaves the rest alone.
#[test]
fn transformer_redacts_configured_keys() {
    let engine = engine();
    let mut s = session(&engine, "redact", Capability::Transform);
    let payload = serde_json::json!({
        "rule_id": "r", "start_time": "s", "end_time": "e", "feedback_stats": {},
        "runs": [run("llm", None, "the answer")]
    });
    let body = s.transform(&json(&payload), r#"{"keys": ["API_KEY"], "replacement": "***"}"#).unwrap();
    let out: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(out["runs"][0]["inputs"]["messages"][0]["api_key"], "***");
    assert_eq!(out["runs"][0]["inputs"]["messages"][0]["content"], "Which documents do I need?");
    assert_eq!(out["runs"][0]["outputs"]["output"], "the answer");
    assert_eq!(out["rule_id"], "r");
}

/// The evaluator example scores answers, and refusals score zero.
#[test]
fn evaluator_scores_answers() {
    let engine = engine();
    let mut s = session(&engine, "output_score", Capability::Evaluate);
    let long = "x".repeat(300);
    let evals = s.evaluate(&json(&run("llm", None, &long)), "null").unwrap();
    assert_eq!(evals.len(), 1);
    assert_eq!(evals[0].key, "answer_usefulness");
    assert_eq!(evals[0].score, Some(1.0));
    let evals = s.evaluate(&json(&run("llm", None, "I don't know, sorry.")), r#"{"key": "quality"}"#).unwrap();
    assert_eq!((evals[0].key.as_str(), evals[0].score), ("quality", Some(0.0)));
    let evals = s.evaluate(&json(&run("llm", None, &"y".repeat(50))), r#"{"target_chars": 100}"#).unwrap();
    assert_eq!(evals[0].score, Some(0.5));
}

/// A plugin exporting all three capabilities serves each, and capabilities come from exports.
#[test]
fn capabilities_are_detected_from_exports() {
    let engine = engine();
    let all = Capabilities::of(Capability::Match).with(Capability::Transform).with(Capability::Evaluate);
    assert_eq!(load(&engine, "noop", all).unwrap().capabilities(), all);
    assert_eq!(
        load(&engine, "llm_errors", Capabilities::NONE).unwrap().capabilities(),
        Capabilities::of(Capability::Match)
    );
    assert_eq!(
        load(&engine, "redact", Capabilities::NONE).unwrap().capabilities(),
        Capabilities::of(Capability::Transform)
    );
    let noop = Arc::new(load(&engine, "noop", all).unwrap());
    let mut s = PluginSession::new(&engine, noop, PluginLimits::default(), "test");
    assert!(s.matches("{}", "null").unwrap());
    assert_eq!(s.transform(r#"{"a":1}"#, "null").unwrap(), r#"{"a":1}"#);
    assert!(s.evaluate("{}", "null").unwrap().is_empty());
}

/// A plugin configured for a capability it does not export is refused at load, naming both.
#[test]
fn capability_mismatch_is_refused_at_load() {
    let engine = engine();
    let err = load(&engine, "redact", Capabilities::of(Capability::Match).with(Capability::Transform)).unwrap_err();
    let text = err.to_string();
    assert!(matches!(&err, PluginError::MissingCapability { missing, .. } if missing == &vec![Capability::Match]));
    assert!(text.contains("plugin redact") && text.contains("runhook:plugin/matcher"), "{text}");
    assert!(err.is_load_error());
}

/// Files that are not components are refused with a reason, not a crash.
#[test]
fn non_components_are_refused() {
    let engine = engine();
    let dir = tempfile::tempdir().unwrap();
    let cache = CompileCache::new(&engine, None).unwrap();
    for (name, bytes) in [
        ("text", b"not wasm at all".to_vec()),
        ("core", vec![0, b'a', b's', b'm', 1, 0, 0, 0]),
        ("truncated", std::fs::read(plugin("noop")).unwrap()[..1000].to_vec()),
    ] {
        let path = dir.path().join(format!("{name}.wasm"));
        std::fs::write(&path, bytes).unwrap();
        let err = LoadedPlugin::load(&engine, &cache, name, &path, Capabilities::NONE).unwrap_err();
        assert!(matches!(err, PluginError::Compile { .. }), "{name}: {err}");
        assert!(err.to_string().contains(&format!("plugin {name}")), "{err}");
    }
    let err =
        LoadedPlugin::load(&engine, &cache, "gone", Path::new("/nonexistent.wasm"), Capabilities::NONE).unwrap_err();
    assert!(matches!(err, PluginError::Read { .. }), "{err}");
}

fn hostile(engine: &PluginEngine, limits: PluginLimits) -> PluginSession {
    let all = Capabilities::of(Capability::Match).with(Capability::Transform).with(Capability::Evaluate);
    let loaded = load(engine, "hostile", all).unwrap();
    PluginSession::new(engine, Arc::new(loaded), limits, "test")
}

/// An infinite loop is interrupted once its deadline passes, as a timeout,
/// and the session recovers. How soon after the deadline is a figure
/// (`runhook-bench plugins`), not a test: a loaded machine delays it.
#[test]
fn infinite_loop_stops_at_the_deadline() {
    let engine = engine();
    let deadline = Duration::from_millis(100);
    let mut s = hostile(&engine, PluginLimits { deadline, ..PluginLimits::default() });
    s.instantiate().unwrap();
    let started = Instant::now();
    let err = s.matches("{}", r#""loop""#).unwrap_err();
    let elapsed = started.elapsed();
    assert!(matches!(err, PluginError::Timeout { capability: Capability::Match, .. }), "{err}");
    assert!(elapsed >= deadline, "stopped early, after {elapsed:?}");
    assert!(elapsed < Duration::from_secs(60), "never interrupted: still running after {elapsed:?}");
    assert!(s.matches("{}", r#""ok""#).unwrap(), "the session starts a fresh instance after a timeout");
}

/// A 1 GiB allocation hits the memory cap, reported as such.
#[test]
fn huge_allocation_hits_the_memory_cap() {
    let engine = engine();
    let mut s = hostile(&engine, PluginLimits::default());
    let err = s.evaluate("{}", r#""alloc""#).unwrap_err();
    assert!(
        matches!(err, PluginError::MemoryLimit { limit_bytes, .. } if limit_bytes == PluginLimits::DEFAULT_MEMORY_BYTES),
        "{err}"
    );
    assert!(s.evaluate("{}", r#""ok""#).unwrap().is_empty());
}

/// Traps and panics are typed errors; a panic carries the guest's message.
#[test]
fn traps_and_panics_are_typed_errors() {
    let engine = engine();
    let mut s = hostile(&engine, PluginLimits::default());
    let err = s.transform("{}", r#""trap""#).unwrap_err();
    assert!(matches!(&err, PluginError::Trap { reason, .. } if reason.contains("unreachable")), "{err}");
    let err = s.transform("{}", r#""panic""#).unwrap_err();
    assert!(matches!(&err, PluginError::Trap { reason, .. } if reason.contains("panics on purpose")), "{err}");
    assert_eq!(s.transform("{}", r#""ok""#).unwrap(), "[]");
}

/// Output that breaks the contract is rejected: non-JSON bodies and malformed feedback.
#[test]
fn invalid_json_output_is_rejected() {
    let engine = engine();
    let mut s = hostile(&engine, PluginLimits::default());
    let err = s.transform("{}", r#""garbage""#).unwrap_err();
    assert!(matches!(err, PluginError::InvalidOutput { capability: Capability::Transform, .. }), "{err}");
    let err = s.evaluate("{}", r#""garbage""#).unwrap_err();
    assert!(matches!(err, PluginError::InvalidOutput { capability: Capability::Evaluate, .. }), "{err}");
    // The noop transformer echoes its input, so it can return any shape.
    let all = Capabilities::of(Capability::Match).with(Capability::Transform).with(Capability::Evaluate);
    let noop = Arc::new(load(&engine, "noop", all).unwrap());
    let mut s = PluginSession::new(&engine, noop, PluginLimits::default(), "test");
    assert!(matches!(s.transform("{\"unterminated", "null"), Err(PluginError::InvalidOutput { .. })));
}

/// The sandbox offers no filesystem, environment, arguments or network,
/// and bounds a plugin that floods stdout and the log.
#[test]
fn sandbox_denies_fs_env_and_network_and_bounds_output() {
    let engine = engine();
    let mut s = hostile(&engine, PluginLimits { deadline: Duration::from_secs(5), ..PluginLimits::default() });
    let report: serde_json::Value = serde_json::from_str(&s.transform("{}", r#""probe""#).unwrap()).unwrap();
    assert_eq!(report, serde_json::json!({"fs": false, "env": 0, "args": 0, "net": false}));
    assert_eq!(s.transform("{}", r#""spam""#).unwrap(), "[]", "a flood of output is not an error");
}

/// Failing plugins on many threads do not disturb a healthy plugin running beside them.
#[test]
fn failures_stay_contained_under_concurrency() {
    let engine = engine();
    let errored = json(&run("llm", Some("boom"), ""));
    std::thread::scope(|scope| {
        for mode in ["loop", "alloc", "trap", "panic", "garbage"] {
            let engine = engine.clone();
            scope.spawn(move || {
                let mut s = hostile(&engine, PluginLimits::default());
                for _ in 0..3 {
                    assert!(s.transform("{}", &format!("{mode:?}")).is_err());
                }
            });
        }
        let engine = engine.clone();
        let errored = errored.clone();
        scope.spawn(move || {
            let mut s = session(&engine, "llm_errors", Capability::Match);
            for _ in 0..200 {
                assert!(s.matches(&errored, "null").unwrap());
            }
        });
    });
}

/// A changed plugin file is picked up without a restart; sessions already
/// open finish on the old version; a bad new version is refused and the old
/// one stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_reload_swaps_versions_without_restart() {
    let engine = engine();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rule-matcher.wasm");
    std::fs::copy(plugin("llm_errors"), &path).unwrap();
    let cache = CompileCache::new(&engine, Some(dir.path().join("cache"))).unwrap();
    let registry = Arc::new(PluginRegistry::new(engine.clone(), cache, PluginFiles::under(dir.path(), 1 << 26)));
    let spec = PluginSpec {
        name: "rule-matcher".into(),
        location: PluginLocation::File(path.clone()),
        required: Capabilities::of(Capability::Match),
    };
    let handle = tokio::task::block_in_place(|| registry.load(&spec)).unwrap();
    let shutdown = CancellationToken::new();
    let watcher = registry.clone().spawn_watcher(Duration::from_millis(20), shutdown.clone());

    let healthy = json(&run("llm", None, "fine"));
    let mut before = handle.session(&engine, PluginLimits::default(), "test");
    assert!(!before.matches(&healthy, "null").unwrap(), "llm_errors does not select healthy runs");
    let old_hash = handle.current().hash().to_string();

    // New version: the no-op plugin selects every run.
    replace(&path, &plugin("noop"));
    wait_for(|| handle.current().hash() != old_hash).await;
    let mut after = handle.session(&engine, PluginLimits::default(), "test");
    assert!(after.matches(&healthy, "null").unwrap(), "the new version is live");
    assert!(!before.matches(&healthy, "null").unwrap(), "an open session stays on its version");

    // A version without the required capability is refused: the no-op stays.
    let live_hash = handle.current().hash().to_string();
    replace(&path, &plugin("redact"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(handle.current().hash(), live_hash);
    // So is a file that is not a component at all.
    std::fs::write(&path, b"garbage").unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(handle.current().hash(), live_hash);
    assert!(handle.session(&engine, PluginLimits::default(), "test").matches(&healthy, "null").unwrap());

    shutdown.cancel();
    watcher.await.unwrap();
}

/// One watcher pass reports what it did, for each kind of change.
#[test]
fn poll_changes_reports_reloads_and_refusals() {
    let engine = engine();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.wasm");
    std::fs::copy(plugin("output_score"), &path).unwrap();
    let files = PluginFiles::under(dir.path(), 1 << 26);
    let registry = PluginRegistry::new(engine.clone(), CompileCache::new(&engine, None).unwrap(), files);
    let spec = PluginSpec {
        name: "p".into(),
        location: PluginLocation::File(path.clone()),
        required: Capabilities::of(Capability::Evaluate),
    };
    registry.load(&spec).unwrap();
    assert!(registry.poll_changes().is_empty(), "nothing changed");
    replace(&path, &plugin("llm_errors"));
    let outcomes = registry.poll_changes();
    assert!(
        matches!(outcomes.as_slice(), [ReloadOutcome::Refused { error: PluginError::MissingCapability { .. }, .. }]),
        "{outcomes:?}"
    );
    assert!(registry.poll_changes().is_empty(), "the same refused bytes are not retried");
    replace(&path, &plugin("hostile"));
    assert!(matches!(registry.poll_changes().as_slice(), [ReloadOutcome::Reloaded { .. }]));
}

fn replace(path: &Path, with: &Path) {
    // Write-then-rename, as deploy tools do; the watcher must see a change.
    let tmp = path.with_extension("tmp");
    std::fs::copy(with, &tmp).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

async fn wait_for(mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < Duration::from_secs(60), "timed out waiting for the reload");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
