//! The dataset action (`add_to_dataset_id`): runs a rule acts on become
//! examples, committed with the cycle before its webhook is queued, with
//! the feedback's correction as outputs when the rule prefers it; a crash
//! (kill -9) and more cycles add no example, and no annotation-queue
//! entry, twice.

use serde_json::{Value, json};

use crate::common::receiver::Receiver;
use crate::common::server::Server;
use crate::common::wait_until;

fn run(i: usize) -> Value {
    json!({"id": format!("0193b8f2-0000-7000-c000-{i:012}"), "name": "Classify", "run_type": "chain",
           "session_name": "issues", "start_time": "2026-12-04T10:00:00Z", "end_time": "2026-12-04T10:00:01Z",
           "inputs": {"issue": format!("issue {i}")}, "outputs": {"label": "feature"}})
}

fn examples(server: &Server, dataset: &str) -> Vec<Value> {
    let got: Value =
        server.client().get(server.at(&format!("/api/v1/examples?dataset={dataset}"))).send().unwrap().json().unwrap();
    got.as_array().unwrap().clone()
}

#[test]
fn corrected_runs_become_examples_once_before_their_webhook() {
    let receiver = Receiver::start();
    let mut server = Server::start();
    let c = server.client();
    let dataset: Value =
        c.post(server.at("/api/v1/datasets")).json(&json!({"name": "corrections"})).send().unwrap().json().unwrap();
    let dataset = dataset["id"].as_str().unwrap().to_string();
    let missing = json!({"display_name": "x", "session_name": "issues", "add_to_dataset_id": "0193b8f2-0000-7000-c000-999999999999"});
    let refused = c.post(server.at("/api/v1/runs/rules")).json(&missing).send().unwrap();
    assert_eq!(refused.status(), 400);
    assert!(refused.text().unwrap().contains("add_to_dataset_id"));

    let queue: Value =
        c.post(server.at("/api/v1/annotation-queues")).json(&json!({"name": "review"})).send().unwrap().json().unwrap();
    let queue = queue["id"].as_str().unwrap().to_string();
    let rule = json!({"display_name": "corrections", "session_name": "issues", "batch_ms": 0,
                      "filter": "eq(feedback_key, \"correction\")", "add_to_annotation_queue_id": queue,
                      "add_to_dataset_id": dataset, "add_to_dataset_prefer_correction": true,
                      "webhooks": [{"url": receiver.at("/hook")}]});
    let rule: Value = c.post(server.at("/api/v1/runs/rules")).json(&rule).send().unwrap().json().unwrap();
    assert_eq!(
        (rule["add_to_dataset_name"].as_str(), rule["add_to_dataset_prefer_correction"].as_bool()),
        (Some("corrections"), Some(true))
    );
    let rule_id = rule["id"].as_str().unwrap().to_string();
    let runs: Vec<Value> = (0..3).map(run).collect();
    assert!(c.post(server.at("/runs/batch")).json(&json!({"post": runs})).send().unwrap().status().is_success());
    // Corrections on two runs: a label, and a whole object.
    for (i, correction) in [(0, json!("bug")), (1, json!({"label": "question", "by": "reviewer"}))] {
        let fb = json!({"run_id": runs[i]["id"], "key": "correction", "correction": correction});
        assert!(c.post(server.at("/feedback")).json(&fb).send().unwrap().status().is_success());
    }
    wait_until("both webhooks", || {
        receiver.received().iter().map(|r| r.body["runs"].as_array().unwrap().len()).sum::<usize>() == 2
    });
    let made = examples(&server, &dataset);
    assert_eq!(made.len(), 2, "{made:?}");
    let by_run = |i: usize| made.iter().find(|e| e["source_run_id"] == runs[i]["id"]).unwrap().clone();
    assert_eq!(by_run(0)["outputs"], json!({"output": "bug"}));
    assert_eq!(by_run(1)["outputs"], json!({"label": "question", "by": "reviewer"}));
    assert_eq!(by_run(0)["inputs"], json!({"issue": "issue 0"}));
    let logs: Value = c.get(server.at(&format!("/api/v1/runs/rules/{rule_id}/logs"))).send().unwrap().json().unwrap();
    for l in logs.as_array().unwrap() {
        assert_eq!(l["add_to_dataset"]["outcome"], "success", "{l}");
        assert_eq!(l["add_to_dataset"]["payload"]["dataset_id"], dataset.as_str());
    }

    // Killed, restarted; the runs get more feedback (so they are in the
    // window again) and the rule runs again: no example twice.
    server = server.crash_and_restart();
    let c = server.client();
    for r in &runs {
        let fb = json!({"run_id": r["id"], "key": "correction", "correction": "later"});
        assert!(c.post(server.at("/feedback")).json(&fb).send().unwrap().status().is_success());
    }
    wait_until("the third run", || {
        receiver.received().iter().map(|r| r.body["runs"].as_array().unwrap().len()).sum::<usize>() == 3
    });
    let last_cycle = || -> Value {
        let v: Value = c.get(server.at(&format!("/api/v1/runs/rules/{rule_id}"))).send().unwrap().json().unwrap();
        v["last_cycle"]["end_time"].clone()
    };
    let before = last_cycle();
    c.post(server.at(&format!("/api/v1/runs/rules/{rule_id}/trigger"))).send().unwrap();
    wait_until("the triggered cycle", || last_cycle() != before);
    let made = examples(&server, &dataset);
    assert_eq!(made.len(), 3, "one example per run, whatever the cycles: {made:?}");
    let first = made.iter().find(|e| e["source_run_id"] == runs[0]["id"]).unwrap();
    assert_eq!(first["outputs"], json!({"output": "bug"}), "an example is made once, not updated");
    let queued: Value =
        c.get(server.at(&format!("/api/v1/annotation-queues/{queue}/runs"))).send().unwrap().json().unwrap();
    let mut queued: Vec<&str> = queued.as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap()).collect();
    queued.sort_unstable();
    let mut want: Vec<&str> = runs.iter().map(|r| r["id"].as_str().unwrap()).collect();
    want.sort_unstable();
    assert_eq!(queued, want, "each run in the queue once");
}
