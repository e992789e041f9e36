//! Operations: `/metrics` after a small workload, and configuration errors
//! at start.

use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use crate::common::server::Server;

/// A workload (ingest, a rule cycle, a delivery) moves the counters that
/// `/metrics` exposes in Prometheus' text format.
#[test]
fn metrics_move_after_a_workload() {
    // A receiver for the rule's webhook.
    let hits = Arc::new(Mutex::new(0usize));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let counter = hits.clone();
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let receiver = format!("http://{}/hook", listener.local_addr().unwrap());
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move || {
            let counter = counter.clone();
            async move {
                *counter.lock().unwrap() += 1;
                "ok"
            }
        }),
    );
    rt.spawn(async move { axum::serve(listener, app).await });

    let server = Server::start();
    let c = server.client();
    let rule =
        json!({"display_name": "all", "session_name": "ops", "interval_seconds": 1, "webhooks": [{"url": receiver}]});
    let resp = c.post(server.at("/api/v1/runs/rules")).json(&rule).send().unwrap();
    assert!(resp.status().is_success(), "{}", resp.text().unwrap());
    let runs: Vec<Value> = (0..5)
        .map(|i| {
            json!({"id": format!("0193b8f2-0000-7000-8000-00000000010{i}"), "name": "step", "run_type": "tool",
                   "session_name": "ops", "start_time": "2026-11-22T10:00:00Z", "end_time": "2026-11-22T10:00:01Z"})
        })
        .collect();
    assert!(c.post(server.at("/runs/batch")).json(&json!({"post": runs})).send().unwrap().status().is_success());
    let started = std::time::Instant::now();
    while *hits.lock().unwrap() == 0 {
        assert!(started.elapsed().as_secs() < 30, "no webhook arrived");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    std::thread::sleep(std::time::Duration::from_millis(500));
    let text = reqwest::blocking::get(server.at("/metrics")).unwrap().text().unwrap();
    let value = |name: &str| -> f64 {
        text.lines()
            .filter(|l| l.starts_with(name) && !l.starts_with('#'))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    assert_eq!(value("runhook_runs_ingested_total"), 5.0, "{text}");
    assert!(value("runhook_rule_cycles_total") >= 1.0, "{text}");
    assert_eq!(value("runhook_rule_runs_matched_total"), 5.0, "{text}");
    assert!(value("runhook_deliveries_total{outcome=\"delivered\"}") >= 1.0, "{text}");
    assert!(value("runhook_delivery_attempt_duration_seconds_count") >= 1.0, "{text}");
    assert!(text.contains("runhook_outbox_depth 0"), "{text}");
}

/// A bad configuration file stops the start with a message naming the key.
#[test]
fn invalid_config_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    for (toml, needle) in [
        ("listen = \"127.0.0.1:0\"\nlisen = 1\n", "lisen"),
        ("[limits]\nmax_body_bytes = 10\n", "limits.max_body_bytes"),
        ("listen = \"not an address\"\n", "`listen`"),
    ] {
        let path = dir.path().join("runhook.toml");
        std::fs::write(&path, toml).unwrap();
        let out = crate::common::runhook()
            .args(["serve", "--data-dir"])
            .arg(dir.path().join("data"))
            .arg("--config")
            .arg(&path)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{toml}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{needle} not in {err}");
    }
}
