//! Wake-ups on ingest: a rule acts on a run well before its interval,
//! batches a burst into one window, and is woken by a commit on another
//! replica; a rule with `wake_on_ingest` off keeps LangSmith's polling.
//!
//! Intervals here are an hour: a delivery within the receiver's wait
//! (at most five minutes) can only have come from a wake-up.

use serde_json::{Value, json};

use crate::common::receiver::Receiver;
use crate::common::server::{Server, fresh_database};

const HOUR: u64 = 3600;

/// A finished run of `project` named `name`.
fn run(id: &str, project: &str, name: &str) -> Value {
    json!({"id": id, "name": name, "run_type": "llm", "session_name": project,
           "start_time": "2026-12-04T10:00:00Z", "end_time": "2026-12-04T10:00:01Z"})
}

/// The run id `0193b8f2-0000-7000-8000-{n:012}`.
fn id(n: usize) -> String {
    format!("0193b8f2-0000-7000-8000-{n:012}")
}

/// Creates a rule on `server`; returns its id.
fn create(server: &Server, rule: &Value) -> String {
    let resp = server.client().post(server.at("/api/v1/runs/rules")).json(rule).send().unwrap();
    assert!(resp.status().is_success(), "{}", resp.text().unwrap());
    resp.json::<Value>().unwrap()["id"].as_str().unwrap().to_string()
}

/// Waits until the rule has run its first cycle, so what is ingested next
/// can only reach it through a wake-up (or its interval).
fn wait_first_cycle(server: &Server, rule: &str) {
    let started = std::time::Instant::now();
    loop {
        let view: Value =
            server.client().get(server.at(&format!("/api/v1/runs/rules/{rule}"))).send().unwrap().json().unwrap();
        if !view["last_cycle"].is_null() {
            return;
        }
        assert!(started.elapsed().as_secs() < 300, "rule {rule} never ran a cycle: {view}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

fn ingest(server: &Server, runs: &[Value]) {
    let resp = server.client().post(server.at("/runs/batch")).json(&json!({"post": runs})).send().unwrap();
    assert!(resp.status().is_success(), "{}", resp.text().unwrap());
}

/// A run ingested after a rule's cycle reaches the receiver long before
/// the rule's hour-long interval; a polling rule on the same project
/// (`wake_on_ingest: false`) has not acted on it meanwhile.
#[test]
fn a_run_arrives_long_before_the_interval() {
    let receiver = Receiver::start();
    let server = Server::start();
    let woken = create(
        &server,
        &json!({"display_name": "woken", "session_name": "wake", "interval_seconds": HOUR,
        "webhooks": [{"url": receiver.at("/woken")}]}),
    );
    let polling = create(
        &server,
        &json!({"display_name": "polling", "session_name": "wake", "interval_seconds": HOUR,
        "wake_on_ingest": false, "webhooks": [{"url": receiver.at("/polling")}]}),
    );
    let view: Value =
        server.client().get(server.at(&format!("/api/v1/runs/rules/{polling}"))).send().unwrap().json().unwrap();
    assert_eq!((view["wake_on_ingest"].clone(), view["batch_ms"].clone()), (json!(false), json!(100)), "{view}");
    wait_first_cycle(&server, &woken);
    wait_first_cycle(&server, &polling);

    ingest(&server, &[run(&id(1), "wake", "first")]);
    let seen = receiver.wait_until("the woken rule delivers the run", |r| r.iter().any(|r| r.path == "/woken"));
    assert_eq!(seen.iter().filter(|r| r.path == "/woken").flat_map(|r| r.run_ids()).collect::<Vec<_>>(), [id(1)]);
    // Delivered, then a second run: each wake-up acts on what is new.
    ingest(&server, &[run(&id(2), "wake", "second")]);
    let seen = receiver.wait_until("the second run", |r| r.iter().filter(|r| r.path == "/woken").count() == 2);
    assert_eq!(
        seen.iter().filter(|r| r.path == "/woken").flat_map(|r| r.run_ids()).collect::<Vec<_>>(),
        [id(1), id(2)]
    );
    assert!(seen.iter().all(|r| r.path != "/polling"), "the polling rule acted before its interval: {seen:#?}");
}

/// Runs ingested in a burst of separate requests arrive in one payload:
/// the woken rule collects for `batch_ms` before its cycle.
#[test]
fn a_burst_arrives_in_one_payload() {
    let receiver = Receiver::start();
    let server = Server::start();
    // Ten seconds of batching: the burst's five requests take milliseconds.
    let rule = create(
        &server,
        &json!({"display_name": "burst", "session_name": "burst", "interval_seconds": HOUR,
        "batch_ms": 10_000, "webhooks": [{"url": receiver.at("/burst")}]}),
    );
    wait_first_cycle(&server, &rule);
    for request in 0..5 {
        ingest(&server, &(0..4).map(|i| run(&id(request * 4 + i), "burst", "step")).collect::<Vec<_>>());
    }
    let seen = receiver.wait_until("the burst", |r| !r.is_empty());
    assert_eq!(seen.len(), 1, "{seen:#?}");
    let mut ids = seen[0].run_ids();
    ids.sort();
    assert_eq!(ids, (0..20).map(id).collect::<Vec<_>>());
}

/// The knob is validated: at most a minute, and at most the interval.
#[test]
fn batch_ms_is_validated() {
    let server = Server::start();
    for (batch, interval) in [(json!(60_001), json!(3600)), (json!(2000), json!(1)), (json!(-1), json!(60))] {
        let rule = json!({"display_name": "b", "session_name": "v", "interval_seconds": interval, "batch_ms": batch,
            "webhooks": [{"url": "http://127.0.0.1:9/"}]});
        let resp = server.client().post(server.at("/api/v1/runs/rules")).json(&rule).send().unwrap();
        crate::common::expect(resp, reqwest::StatusCode::BAD_REQUEST, "batch_ms");
    }
}

/// On Postgres a commit on one replica wakes the rule on the other: runs
/// are ingested through each replica in turn, so whichever holds the rule,
/// one of them crossed.
#[test]
fn the_wake_up_crosses_replicas() {
    let Some(pg) = std::env::var("RUNHOOK_E2E_DATABASE").ok().filter(|s| !s.is_empty()) else {
        eprintln!("skipped: replicas share a Postgres database; set RUNHOOK_E2E_DATABASE (tests/run.sh does)");
        return;
    };
    let receiver = Receiver::start();
    let url = fresh_database(&pg, "wakeups");
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let key = dirs[0].path().join("secret.key");
    let env = [("RUNHOOK_DATABASE_URL", url.as_str()), ("RUNHOOK_SECRET_KEY_FILE", key.to_str().unwrap())];
    let a = Server::start_on(&dirs[0].path().join("data"), &env);
    let b = Server::start_on(&dirs[1].path().join("data"), &env);
    let rule = create(
        &a,
        &json!({"display_name": "crossing", "session_name": "cross", "interval_seconds": HOUR,
        "webhooks": [{"url": receiver.at("/cross")}]}),
    );
    wait_first_cycle(&a, &rule);
    for (n, server) in [&a, &b, &a, &b].into_iter().enumerate() {
        ingest(server, &[run(&id(n), "cross", "hop")]);
        receiver
            .wait_until("the run ingested on one replica", |r| r.iter().flat_map(|r| r.run_ids()).any(|r| r == id(n)));
    }
    let ids: Vec<String> = receiver.received().iter().flat_map(|r| r.run_ids()).collect();
    assert_eq!(ids, (0..4).map(id).collect::<Vec<_>>());
}
