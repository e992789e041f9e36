//! Delivery claims across a crash: an attempt cut short by `kill -9` is
//! counted, and the next attempt says so.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use serde_json::{Value, json};

use crate::common::server::Server;

/// The headers of each request the receiver got.
type Seen = Arc<Mutex<Vec<HeaderMap>>>;

/// A receiver that never answers its first request and answers 200 to the
/// others; it notes every request's headers.
fn stalling_receiver(rt: &tokio::runtime::Runtime) -> (String, Seen) {
    let seen: Seen = Arc::default();
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let notes = seen.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap| {
            let notes = notes.clone();
            async move {
                let first = {
                    let mut seen = notes.lock().unwrap();
                    seen.push(headers);
                    seen.len() == 1
                };
                if first {
                    std::future::pending::<()>().await;
                }
                "ok"
            }
        }),
    );
    rt.spawn(async move { axum::serve(listener, app).await });
    (url, seen)
}

fn wait_for(seen: &Seen, n: usize, within: Duration) {
    let started = Instant::now();
    while seen.lock().unwrap().len() < n {
        assert!(started.elapsed() < within, "the receiver got {} requests, not {n}", seen.lock().unwrap().len());
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The server is killed (SIGKILL) while an attempt waits for its answer;
/// after restart, once the attempt's claim has expired, the delivery is
/// sent again with the same `webhook-id` and `runhook-attempt: 2`, and its
/// history lists the first attempt as interrupted.
#[test]
fn an_attempt_cut_by_a_crash_is_counted() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (receiver, seen) = stalling_receiver(&rt);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // A 2 s attempt deadline: the claim lasts 2 x 2 + 5 = 9 s.
    let env = [("RUNHOOK_DELIVERY_ATTEMPT_TIMEOUT_MS", "2000")];
    let server = Server::start_on(&data, &env);
    let c = server.client();
    let rule = json!({"display_name": "crash", "session_name": "claims", "interval_seconds": 1,
                      "webhooks": [{"url": receiver}]});
    let resp = c.post(server.at("/api/v1/runs/rules")).json(&rule).send().unwrap();
    assert!(resp.status().is_success(), "{}", resp.text().unwrap());
    let run = json!({"id": "0193b8f2-0000-7000-8000-000000000201", "name": "step", "run_type": "tool",
                     "session_name": "claims", "start_time": "2026-11-22T10:00:00Z", "end_time": "2026-11-22T10:00:01Z"});
    assert!(c.post(server.at("/runs/batch")).json(&json!({"post": [run]})).send().unwrap().status().is_success());

    // The first attempt is in flight (the receiver holds it): kill now.
    wait_for(&seen, 1, Duration::from_secs(60));
    drop(server);
    let server = Server::start_on(&data, &env);
    wait_for(&seen, 2, Duration::from_secs(60));

    let header = |i: usize, name: &str| seen.lock().unwrap()[i][name].to_str().unwrap().to_string();
    assert_eq!(header(0, "runhook-attempt"), "1");
    assert_eq!(header(1, "runhook-attempt"), "2");
    assert_eq!(header(1, "webhook-id"), header(0, "webhook-id"));
    let id = header(1, "webhook-id");
    let c = server.client();
    let started = Instant::now();
    let delivery = loop {
        let d: Value = c.get(server.at(&format!("/api/v1/deliveries/{id}"))).send().unwrap().json().unwrap();
        if d["status"] == "delivered" {
            break d;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "not recorded as delivered: {d}");
        std::thread::sleep(Duration::from_millis(50));
    };
    let history: Vec<(u64, String)> = delivery["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["attempt"].as_u64().unwrap(), a["class"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(history, [(1, "interrupted".to_string()), (2, "success".to_string())], "{delivery}");
    assert_eq!(delivery["attempts"], 2, "{delivery}");
}
