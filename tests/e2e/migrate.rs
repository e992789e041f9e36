//! `runhook migrate-store`: an embedded store with history, rules part way
//! through their windows, a thread rule's held thread and deliveries,
//! moved to Postgres; the server on
//! Postgres carries on, neither re-sending what was sent nor skipping what
//! was not. Runs in the suite's Postgres pass (`RUNHOOK_E2E_DATABASE`).

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::receiver::{Received, Receiver};
use crate::common::server::{Server, fresh_database};
use crate::common::{plugin, runhook};

/// Per run id, the webhook-ids it arrived under.
fn by_run(received: &[Received]) -> HashMap<String, HashSet<String>> {
    let mut seen: HashMap<String, HashSet<String>> = HashMap::new();
    for r in received {
        for run in r.run_ids() {
            seen.entry(run).or_default().insert(r.webhook_id.clone());
        }
    }
    seen
}

fn runs(from: usize, n: usize) -> Value {
    let posts: Vec<Value> = (from..from + n)
        .map(|i| {
            json!({"id": format!("0193b8f2-0000-7000-9000-{i:012}"), "name": "moved", "run_type": "llm",
                   "session_name": "moving", "start_time": "2026-12-04T10:00:00Z",
                   "end_time": "2026-12-04T10:00:01Z", "inputs": {"i": i}})
        })
        .collect();
    json!({"post": posts})
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < Duration::from_secs(120), "{what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_migrated_store_carries_on_without_resending_or_skipping() {
    let Some(pg) = std::env::var("RUNHOOK_E2E_DATABASE").ok().filter(|s| !s.is_empty()) else {
        eprintln!(
            "skipped: the migration's target is a Postgres database; set RUNHOOK_E2E_DATABASE (tests/run.sh does)"
        );
        return;
    };
    let receiver = Receiver::start();
    let seen = || by_run(&receiver.received().into_iter().filter(|r| r.path == "/hook").collect::<Vec<_>>());
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("embedded");
    let key_file = data.join("secret.key");
    let key_file = key_file.to_str().unwrap();
    // The embedded store, whatever the suite's pass.
    let embedded = [("RUNHOOK_DATABASE_URL", ""), ("RUNHOOK_SECRET_KEY_FILE", key_file)];
    let server = Server::start_on(&data, &embedded);
    let c = server.client();
    assert!(c.post(server.at("/runs/batch")).json(&runs(0, 1)).send().unwrap().status().is_success());
    let session = c.get(server.at("/sessions?name=moving")).send().unwrap().json::<Value>().unwrap()[0]["id"].clone();
    // A dataset with two examples, one made from a run.
    let dataset: Value =
        c.post(server.at("/api/v1/datasets")).json(&json!({"name": "kept"})).send().unwrap().json().unwrap();
    let examples = json!([{"dataset_id": dataset["id"], "inputs": {"q": 1}, "outputs": {"a": 1}, "split": "test"},
                          {"dataset_id": dataset["id"], "source_run_id": "0193b8f2-0000-7000-9000-000000000000",
                           "use_source_run_io": true}]);
    assert!(c.post(server.at("/api/v1/examples/bulk")).json(&examples).send().unwrap().status().is_success());
    // An annotation queue holding the first run.
    let queue: Value =
        c.post(server.at("/api/v1/annotation-queues")).json(&json!({"name": "kept"})).send().unwrap().json().unwrap();
    let queued = json!(["0193b8f2-0000-7000-9000-000000000000"]);
    let added = c.post(server.at(&format!("/api/v1/annotation-queues/{}/runs", queue["id"].as_str().unwrap())));
    assert!(added.json(&queued).send().unwrap().status().is_success());
    // An uploaded transform plugin redacts each run's inputs.
    let redact = std::fs::read(plugin("redact")).unwrap();
    let uploaded = c.post(server.at("/api/v1/plugins?name=redact")).body(redact).send().unwrap();
    let digest = uploaded.json::<Value>().unwrap()["sha256"].clone();
    let transform = json!({"sha256": digest, "config": {"keys": ["i"]}});
    // A long interval: the rule runs at start and when triggered, not on its own.
    let rule = json!({"display_name": "moving", "session_id": session, "interval_seconds": 3600,
                      "webhooks": [{"url": receiver.at("/hook")}], "plugins": {"transform": transform}});
    let rule: Value = c.post(server.at("/api/v1/runs/rules")).json(&rule).send().unwrap().json().unwrap();
    let rule_id = rule["id"].as_str().expect("the rule is created").to_string();
    // A thread rule holding a thread that is not idle yet when the server stops.
    let threads = json!({"display_name": "conversations", "session_name": "chats", "group_by": "thread_id",
                         "thread_idle_seconds": 3600, "webhooks": [{"url": receiver.at("/threads")}]});
    let threads: Value = c.post(server.at("/api/v1/runs/rules")).json(&threads).send().unwrap().json().unwrap();
    let threads_id = threads["id"].as_str().expect("the thread rule is created").to_string();
    // Its turns ended 90 s ago (idleness is by the runs' own times).
    let ended = (chrono::Utc::now() - chrono::Duration::seconds(90)).to_rfc3339();
    let turns: Vec<Value> = (0..2)
        .map(|i| {
            json!({"id": format!("0193b8f2-0000-7000-9100-{i:012}"), "name": "turn", "run_type": "chain",
                   "session_name": "chats", "start_time": "2026-12-04T10:00:00Z", "end_time": ended,
                   "extra": {"metadata": {"thread_id": "kept"}}})
        })
        .collect();
    assert!(c.post(server.at("/runs/batch")).json(&json!({"post": turns})).send().unwrap().status().is_success());
    wait_for("the thread rule never held the turns", || {
        let cycles = c.get(server.at(&format!("/api/v1/runs/rules/{threads_id}/cycles"))).send().unwrap();
        cycles.json::<Value>().unwrap().as_array().unwrap().iter().filter_map(|c| c["candidates"].as_i64()).sum::<i64>()
            == 2
    });
    assert!(c.post(server.at("/runs/batch")).json(&runs(1, 50)).send().unwrap().status().is_success());
    c.post(server.at(&format!("/api/v1/runs/rules/{rule_id}/trigger"))).send().unwrap();
    wait_for("the first 50 runs were not delivered", || seen().len() == 50);
    // Runs the rule has not seen yet when the server stops.
    assert!(c.post(server.at("/runs/batch")).json(&runs(51, 30)).send().unwrap().status().is_success());
    drop(server);

    let target = fresh_database(&pg, "migrated");
    let out = runhook()
        .args(["migrate-store", "--from", &format!("sqlite:{}", data.display()), "--to", &target])
        .env_remove("RUNHOOK_DATABASE_URL")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "migrate-store failed: {}", String::from_utf8_lossy(&out.stderr));
    assert!(
        stdout.contains("83 runs")
            && stdout.contains("1 plugins")
            && stdout.contains("2 rules")
            && stdout.contains("50 rule-log lines, 2 runs held by thread rules")
            && stdout.contains("1 datasets, 2 examples, 1 annotation queues"),
        "{stdout}"
    );
    // A second move into the same database is refused: it is not empty.
    let again = runhook()
        .args(["migrate-store", "--from", &format!("sqlite:{}", data.display()), "--to", &target])
        .output()
        .unwrap();
    assert!(!again.status.success() && String::from_utf8_lossy(&again.stderr).contains("not empty"));

    // On Postgres, with the embedded store's keys and no plugin file: the
    // rule's first cycle sends the 30 runs it had not seen, and nothing
    // else, redacted by the plugin it loads from the database.
    let no_plugins = dir.path().join("no-plugins");
    let moved = Server::start_on(
        &dir.path().join("replica"),
        &[
            ("RUNHOOK_DATABASE_URL", &target),
            ("RUNHOOK_SECRET_KEY_FILE", key_file),
            ("RUNHOOK_PLUGINS_DIR", no_plugins.to_str().unwrap()),
        ],
    );
    let c = moved.client();
    wait_for("the 30 runs the rule had not seen were not delivered", || seen().len() == 80);
    let plugins: Value = c.get(moved.at("/api/v1/plugins")).send().unwrap().json().unwrap();
    assert_eq!(plugins[0]["sha256"], digest, "the plugin moved");
    assert_eq!(plugins[0]["rules"], json!([rule_id]), "and the rule still uses it");
    for r in receiver.received() {
        for run in r.body["runs"].as_array().unwrap() {
            assert_eq!(run["inputs"]["i"], json!("[REDACTED]"), "every payload went through the plugin: {run}");
        }
    }
    let query: Value = c.post(moved.at("/runs/query")).json(&json!({"limit": 100})).send().unwrap().json().unwrap();
    assert_eq!(query["runs"].as_array().map(Vec::len), Some(83), "every run moved");
    let logs: Value =
        c.get(moved.at(&format!("/runs/rules/{rule_id}/logs?limit=1000"))).send().unwrap().json().unwrap();
    assert_eq!(logs.as_array().map(Vec::len), Some(80), "one log line per run sent, before and after the move");
    let kept: Value = c.get(moved.at("/api/v1/datasets?name=kept")).send().unwrap().json().unwrap();
    assert_eq!((kept[0]["id"].clone(), kept[0]["example_count"].clone()), (dataset["id"].clone(), json!(2)));
    let moved_examples: Value = c
        .get(moved.at(&format!("/api/v1/examples?dataset={}", dataset["id"].as_str().unwrap())))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(moved_examples[0]["metadata"]["dataset_split"], json!(["test"]), "{moved_examples}");
    assert_eq!(moved_examples[1]["source_run_id"], "0193b8f2-0000-7000-9000-000000000000");
    let in_queue: Value = c
        .get(moved.at(&format!("/api/v1/annotation-queues/{}/runs", queue["id"].as_str().unwrap())))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(in_queue[0]["id"], "0193b8f2-0000-7000-9000-000000000000", "{in_queue}");
    let deliveries: Value = c.get(moved.at("/deliveries?limit=100")).send().unwrap().json().unwrap();
    assert!(deliveries.as_array().is_some_and(|d| d.len() >= 2), "the deliveries from before the move are listed");
    // Another cycle, triggered: it finds nothing new to send.
    let cycles = || -> f64 {
        let text = c.get(moved.at("/metrics")).send().unwrap().text().unwrap();
        let line = text.lines().find(|l| {
            l.starts_with("runhook_rule_cycles_total") && l.contains(&rule_id) && l.contains("outcome=\"ok\"")
        });
        line.and_then(|l| l.rsplit(' ').next()).and_then(|v| v.parse().ok()).unwrap_or(0.0)
    };
    let before = cycles();
    c.post(moved.at(&format!("/api/v1/runs/rules/{rule_id}/trigger"))).send().unwrap();
    wait_for("the triggered cycle did not run", || cycles() > before);
    let twice: Vec<_> = seen().into_iter().filter(|(_, ids)| ids.len() > 1).map(|(r, _)| r).collect();
    assert!(twice.is_empty(), "runs sent again after the move: {twice:?}");

    // The held thread moved too: with a minute's idle time it is due at once.
    let shorter = c.patch(moved.at(&format!("/api/v1/runs/rules/{threads_id}")));
    assert!(shorter.json(&json!({"thread_idle_seconds": 60})).send().unwrap().status().is_success());
    let sent = receiver.wait_until("the held thread, sent from Postgres", |r| r.iter().any(|r| r.path == "/threads"));
    let thread = sent.iter().find(|r| r.path == "/threads").unwrap();
    assert_eq!(thread.body["threads"][0]["thread_id"], "kept");
    assert_eq!(thread.run_ids(), ["0193b8f2-0000-7000-9100-000000000000", "0193b8f2-0000-7000-9100-000000000001"]);
}
