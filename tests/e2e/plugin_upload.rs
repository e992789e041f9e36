//! Plugins uploaded through the API (`/api/v1/plugins`): stored by the
//! SHA-256 of their bytes, refused when they are not components, named by
//! rules with `"sha256"`, loaded from the store (the server's plugins
//! directory is empty), and kept while a rule uses them. On both stores.

use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::common::receiver::Receiver;
use crate::common::server::Server;
use crate::common::{expect, plugin};

fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

fn llm_run(id: &str, error: Option<&str>) -> Value {
    json!({"id": id, "name": "ChatOpenAI", "run_type": "llm", "session_name": "uploads",
           "start_time": "2026-12-04T10:00:00Z", "end_time": "2026-12-04T10:00:01Z",
           "inputs": {"q": "?"}, "outputs": {"a": "!"}, "error": error})
}

#[test]
fn uploaded_plugins_are_stored_by_digest_used_by_rules_and_kept_while_used() {
    let empty = tempfile::tempdir().unwrap();
    let server = Server::start_with(&[("RUNHOOK_PLUGINS_DIR", empty.path().to_str().unwrap())], None);
    let c = server.client();
    let wasm = std::fs::read(plugin("llm_errors")).unwrap();
    let digest = sha256(&wasm);

    let first = c.post(server.at("/api/v1/plugins?name=llm-errors")).body(wasm.clone()).send().unwrap();
    assert_eq!(first.status(), StatusCode::CREATED);
    assert_eq!(first.headers()["location"], format!("/api/v1/plugins/{digest}").as_str());
    let record: Value = first.json().unwrap();
    assert_eq!(record["sha256"], json!(digest));
    assert_eq!(record["name"], json!("llm-errors"));
    assert_eq!(record["size"], json!(wasm.len()));
    assert_eq!(record["capabilities"], json!(["match"]));
    let again = c.post(server.at("/api/v1/plugins?name=other")).body(wasm.clone()).send().unwrap();
    assert_eq!(again.status(), StatusCode::OK, "the same bytes are stored once");
    assert_eq!(again.json::<Value>().unwrap(), record);
    let listed: Value = c.get(server.at("/api/v1/plugins")).send().unwrap().json().unwrap();
    assert_eq!(listed, json!([record]));

    // What is not a component, or exports nothing of runhook's, is refused.
    let not_wasm = c.post(server.at("/api/v1/plugins")).body("hello").send().unwrap();
    expect(not_wasm, StatusCode::BAD_REQUEST, "not a loadable WebAssembly component");
    let core_module = c.post(server.at("/api/v1/plugins")).body(&b"\0asm\x01\0\0\0"[..]).send().unwrap();
    expect(core_module, StatusCode::BAD_REQUEST, "core WebAssembly module");
    expect(
        c.post(server.at("/api/v1/plugins?name=%07")).body(wasm.clone()).send().unwrap(),
        StatusCode::BAD_REQUEST,
        "name",
    );
    expect(c.get(server.at("/api/v1/plugins/abc")).send().unwrap(), StatusCode::BAD_REQUEST, "64 hex digits");
    expect(
        c.get(server.at(&format!("/api/v1/plugins/{}", "0".repeat(64)))).send().unwrap(),
        StatusCode::NOT_FOUND,
        "not found",
    );

    // Rules name it by digest, for a capability it has.
    let receiver = Receiver::start();
    let rule = |plugins: Value| {
        json!({"display_name": "errors", "session_name": "uploads", "interval_seconds": 1,
               "webhooks": [{"url": receiver.at("/hook")}], "plugins": plugins})
    };
    let post_rule = |body: Value| c.post(server.at("/api/v1/runs/rules")).json(&body).send().unwrap();
    expect(
        post_rule(rule(json!({"transform": {"sha256": digest}}))),
        StatusCode::BAD_REQUEST,
        "does not export transform",
    );
    let unknown = sha256(b"never uploaded");
    expect(post_rule(rule(json!({"match": {"sha256": unknown}}))), StatusCode::BAD_REQUEST, "no uploaded plugin");
    expect(
        post_rule(rule(json!({"match": {"sha256": digest, "path": "x.wasm"}}))),
        StatusCode::BAD_REQUEST,
        "give one of sha256, path and builtin",
    );
    let created = post_rule(rule(json!({"match": {"sha256": format!("sha256:{}", digest.to_uppercase())}})));
    assert_eq!(created.status(), StatusCode::OK);
    let created: Value = created.json().unwrap();
    assert_eq!(created["plugins"]["match"]["sha256"], json!(digest), "stored normalised");
    let rule_id = created["id"].as_str().unwrap().to_string();

    // The match plugin, loaded from the store, picks the failed LLM call.
    let (failed, fine) = ("0193b8f2-0000-7000-8000-00000000a001", "0193b8f2-0000-7000-8000-00000000a002");
    let batch = json!({"post": [llm_run(failed, Some("RateLimitError")), llm_run(fine, None)]});
    assert!(c.post(server.at("/runs/batch")).json(&batch).send().unwrap().status().is_success());
    let got = receiver
        .wait_until("the failed run delivered", |r| r.iter().any(|r| r.run_ids().contains(&failed.to_string())));
    let sent: Vec<String> = got.iter().flat_map(|r| r.run_ids()).collect();
    assert_eq!(sent, vec![failed.to_string()], "only the run the plugin matched");
    assert!(got.iter().all(|r| r.path == "/hook"), "to the rule's webhook");

    // Kept while the rule uses it, deleted once none does.
    let used: Value = c.get(server.at(&format!("/api/v1/plugins/{digest}"))).send().unwrap().json().unwrap();
    assert_eq!(used["rules"], json!([rule_id]));
    expect(c.delete(server.at(&format!("/api/v1/plugins/{digest}"))).send().unwrap(), StatusCode::CONFLICT, &rule_id);
    assert!(c.delete(server.at(&format!("/api/v1/runs/rules/{rule_id}"))).send().unwrap().status().is_success());
    assert_eq!(
        c.delete(server.at(&format!("/api/v1/plugins/{digest}"))).send().unwrap().status(),
        StatusCode::NO_CONTENT
    );
    expect(c.get(server.at(&format!("/api/v1/plugins/{digest}"))).send().unwrap(), StatusCode::NOT_FOUND, "not found");
    assert_eq!(c.get(server.at("/api/v1/plugins")).send().unwrap().json::<Value>().unwrap(), json!([]));
}

/// An upload larger than `plugins.max_file_bytes` is refused with a 413
/// naming the setting, and the server keeps serving.
#[test]
fn an_upload_over_the_limit_is_refused() {
    let server = Server::start_with(&[("RUNHOOK_PLUGIN_MAX_FILE_BYTES", "2048")], None);
    let c = server.client();
    let resp = c.post(server.at("/api/v1/plugins")).body(vec![0u8; 4096]).send().unwrap();
    expect(resp, StatusCode::PAYLOAD_TOO_LARGE, "plugins.max_file_bytes");
    assert_eq!(c.get(server.at("/api/v1/plugins")).send().unwrap().json::<Value>().unwrap(), json!([]));
}
