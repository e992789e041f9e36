//! `runhook plugin check` and `runhook plugin run`, driven as a user would.

use std::process::Output;

use crate::common::{plugin, run, runhook};

fn stdout_json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

/// A second start compiles nothing: the first `check` fills the cache, the
/// second (a new process) loads from it.
#[test]
fn second_start_loads_from_the_compile_cache() {
    let cache = tempfile::tempdir().unwrap();
    let check = || {
        let out = runhook()
            .args(["plugin", "check", "--json", "--cache-dir"])
            .arg(cache.path())
            .arg(plugin("output_score"))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        stdout_json(&out)
    };
    let first = check();
    assert_eq!(first["cache"], "miss");
    assert_eq!(first["capabilities"], serde_json::json!(["evaluate"]));
    let second = check();
    assert_eq!(second["cache"], "hit");
    assert_eq!(first["sha256"], second["sha256"]);
    let entries: Vec<_> = std::fs::read_dir(cache.path()).unwrap().collect();
    assert_eq!(entries.len(), 1, "one compiled entry, no temporary leftovers");
}

/// `check` explains a capability mismatch and exits 1; the text form names the plugin.
#[test]
fn check_refuses_a_missing_capability() {
    let out = runhook()
        .args(["plugin", "check", "--no-cache", "--require", "match,evaluate"])
        .arg(plugin("llm_errors"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("plugin llm_errors") && err.contains("runhook:plugin/evaluator"), "{err}");
}

/// `run` prints the result of each capability; `--json` reports it with the time taken.
#[test]
fn run_calls_each_capability() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("run.json");
    std::fs::write(&input, serde_json::to_vec(&run("llm", Some("RateLimitError"), "")).unwrap()).unwrap();
    let out = runhook()
        .args(["plugin", "run", "--no-cache"])
        .arg(plugin("llm_errors"))
        .arg("--match")
        .arg(&input)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "true");
    assert!(String::from_utf8_lossy(&out.stderr).contains("matches took"));

    let out = runhook()
        .args(["plugin", "run", "--no-cache", "--json"])
        .arg(plugin("output_score"))
        .arg("--evaluate")
        .arg(&input)
        .args(["--config", r#"{"key": "usefulness"}"#])
        .output()
        .unwrap();
    let report = stdout_json(&out);
    assert_eq!(report["ok"], true);
    assert_eq!(report["result"][0]["key"], "usefulness");
    assert!(report["elapsed_ms"].as_f64().unwrap() > 0.0);
}

/// A failing plugin call is reported with its kind and exit code 1.
#[test]
fn run_reports_plugin_failures() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("run.json");
    std::fs::write(&input, b"{}").unwrap();
    let out = runhook()
        .args(["plugin", "run", "--no-cache", "--json", "--deadline-ms", "50"])
        .arg(plugin("hostile"))
        .arg("--match")
        .arg(&input)
        .args(["--config", r#""loop""#])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let report = stdout_json(&out);
    assert_eq!(report["kind"], "timeout");
    assert!(report["error"].as_str().unwrap().contains("plugin hostile"));
}

/// Bad arguments are the command's error (exit 2) with a message saying which.
#[test]
fn run_rejects_bad_input_before_calling() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, b"{not json").unwrap();
    let out = runhook()
        .args(["plugin", "run", "--no-cache"])
        .arg(plugin("llm_errors"))
        .arg("--match")
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad.json is not valid JSON"));

    let good = dir.path().join("good.json");
    std::fs::write(&good, b"{}").unwrap();
    let out = runhook()
        .args(["plugin", "run", "--no-cache", "--config", "{oops"])
        .arg(plugin("llm_errors"))
        .arg("--match")
        .arg(&good)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--config is not valid JSON"));

    let out = runhook().args(["plugin", "run"]).arg(plugin("llm_errors")).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "no capability flag is a usage error");
}

/// `upload` checks the component locally, sends it to the server, and says
/// how a rule names it; the same bytes again are "already uploaded".
#[test]
fn upload_sends_a_checked_component_to_the_server() {
    use crate::common::server::{API_KEY, Server};
    let server = Server::start();
    let upload = |file: &std::path::Path, extra: &[&str]| {
        runhook()
            .args(["plugin", "upload", "--server", &server.url, "--api-key", API_KEY])
            .args(extra)
            .arg(file)
            .output()
            .unwrap()
    };
    let file = plugin("llm_errors");
    let out = upload(&file, &["--name", "errors"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let digest: String = {
        use sha2::Digest;
        sha2::Sha256::digest(std::fs::read(&file).unwrap()).iter().map(|b| format!("{b:02x}")).collect()
    };
    assert!(stdout.starts_with("uploaded errors") && stdout.contains(&digest), "{stdout}");
    assert!(stdout.contains(&format!("\"match\": {{\"sha256\": \"{digest}\"}}")), "{stdout}");
    let again = upload(&file, &["--json"]);
    assert!(again.status.success());
    assert_eq!(stdout_json(&again)["name"], "errors", "the first name stays");
    let listed: serde_json::Value = server.client().get(server.at("/api/v1/plugins")).send().unwrap().json().unwrap();
    assert_eq!(listed[0]["sha256"], digest.as_str());

    // Not a component: refused here, exit 1, nothing sent.
    let bad = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(bad.path(), b"not wasm").unwrap();
    let refused = upload(bad.path(), &[]);
    assert_eq!(refused.status.code(), Some(1));
    let listed: serde_json::Value = server.client().get(server.at("/api/v1/plugins")).send().unwrap().json().unwrap();
    assert_eq!(listed.as_array().map(Vec::len), Some(1));
}

/// A shipped message format is tried like any plugin, by `builtin:NAME`;
/// an unknown name is refused, listing the ones there are.
#[test]
fn run_tries_a_shipped_format() {
    let sample = crate::common::repo().join("plugins/samples/alert-notification.json");
    let out = runhook().args(["plugin", "run", "builtin:discord", "--transform"]).arg(&sample).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let body = stdout_json(&out);
    assert_eq!(body["content"], "[CRITICAL] checkout agent errors: error rate is 0.3125");
    let out = runhook().args(["plugin", "run", "builtin:irc", "--transform"]).arg(&sample).output().unwrap();
    assert!(!out.status.success());
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("\"irc\"") && text.contains("slack, teams"), "{text}");
}
