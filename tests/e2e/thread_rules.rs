//! Thread rules (`group_by: "thread_id"`): three threads, two idle and one
//! that keeps receiving runs. Exactly the idle two are sent, each once with
//! all its runs and added to the annotation queue; the third is held across
//! a kill -9 and sent once it goes idle; a run that reaches a thread after
//! it was sent starts a new idle period. Idleness is judged by the runs'
//! own times, so the runs are posted as having ended a while ago.

use std::collections::HashMap;

use serde_json::{Value, json};

use crate::common::receiver::{Received, Receiver};
use crate::common::server::Server;
use crate::common::{expect, wait_until};

/// A turn of `thread` (or a run of no thread) that ended `ago` seconds ago.
fn turn(i: usize, thread: Option<&str>, ago: i64) -> Value {
    let end = chrono::Utc::now() - chrono::Duration::seconds(ago);
    let start = end - chrono::Duration::seconds(1);
    let metadata = thread.map_or(json!({}), |t| json!({"thread_id": t}));
    json!({"id": format!("0193b8f2-0000-7000-d000-{i:012}"), "name": "Reply", "run_type": "chain",
           "session_name": "chat", "start_time": start.to_rfc3339(), "end_time": end.to_rfc3339(),
           "inputs": {"message": format!("turn {i}")}, "outputs": {"reply": "ok"},
           "extra": {"metadata": metadata}})
}

/// Each thread entry the receiver got: thread id -> the run ids of each send.
fn sends(received: &[Received]) -> HashMap<String, Vec<Vec<String>>> {
    let mut out: HashMap<String, Vec<Vec<String>>> = HashMap::new();
    for r in received {
        let sent = r.run_ids();
        for t in r.body["threads"].as_array().into_iter().flatten() {
            let ids: Vec<String> =
                t["run_ids"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().into()).collect();
            assert!(ids.iter().all(|id| sent.contains(id)), "a thread's runs are in the payload's runs: {}", r.body);
            out.entry(t["thread_id"].as_str().unwrap().into()).or_default().push(ids);
        }
    }
    out
}

fn ids(runs: &[&Value]) -> Vec<String> {
    runs.iter().map(|r| r["id"].as_str().unwrap().to_string()).collect()
}

#[test]
fn idle_threads_are_sent_once_each_with_all_their_runs() {
    let receiver = Receiver::start();
    let mut server = Server::start();
    let c = server.client();
    let queue: Value = c
        .post(server.at("/api/v1/annotation-queues"))
        .json(&json!({"name": "threads"}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let queue = queue["id"].as_str().unwrap().to_string();
    let base = json!({"display_name": "idle threads", "session_name": "chat", "group_by": "thread_id",
                      "thread_idle_seconds": 60, "webhooks": [{"url": receiver.at("/hook")}]});
    let with = |changes: Value| {
        let mut rule = base.clone();
        rule.as_object_mut().unwrap().extend(changes.as_object().unwrap().clone());
        rule
    };
    let post = |rule: &Value| c.post(server.at("/api/v1/runs/rules")).json(rule).send().unwrap();
    let dataset: Value =
        c.post(server.at("/api/v1/datasets")).json(&json!({"name": "d"})).send().unwrap().json().unwrap();
    expect(post(&with(json!({"add_to_dataset_id": dataset["id"]}))), reqwest::StatusCode::BAD_REQUEST, "thread rule");
    expect(post(&with(json!({"thread_idle_seconds": 30}))), reqwest::StatusCode::BAD_REQUEST, "thread_idle_seconds");
    expect(post(&with(json!({"group_by": "trajectory_id"}))), reqwest::StatusCode::BAD_REQUEST, "group_by");
    expect(post(&with(json!({"group_by": null}))), reqwest::StatusCode::BAD_REQUEST, "thread rules only");

    let rule: Value = post(&with(json!({"add_to_annotation_queue_id": queue}))).json().unwrap();
    assert_eq!((rule["group_by"].as_str(), rule["thread_idle_seconds"].as_u64()), (Some("thread_id"), Some(60)));
    let rule_id = rule["id"].as_str().unwrap().to_string();

    // a and b went quiet minutes ago; c's last turn was 30 s ago.
    let a = [turn(1, Some("a"), 300), turn(2, Some("a"), 240), turn(3, Some("a"), 180)];
    let b = [turn(4, Some("b"), 200), turn(5, Some("b"), 150)];
    let c_early = [turn(6, Some("c"), 200), turn(7, Some("c"), 30)];
    let lone = turn(8, None, 300);
    let all: Vec<&Value> = a.iter().chain(&b).chain(&c_early).chain([&lone]).collect();
    assert!(c.post(server.at("/runs/batch")).json(&json!({"post": all})).send().unwrap().status().is_success());
    let got = receiver.wait_until("threads a and b", |r| {
        let s = sends(r);
        s.contains_key("a") && s.contains_key("b")
    });
    let s = sends(&got);
    assert_eq!(s["a"], vec![ids(&a.iter().collect::<Vec<_>>())]);
    assert_eq!(s["b"], vec![ids(&b.iter().collect::<Vec<_>>())]);
    assert!(!s.contains_key("c"), "c is not idle yet: {s:?}");
    let thread_a =
        got.iter().flat_map(|r| r.body["threads"].as_array().unwrap().clone()).find(|t| t["thread_id"] == "a");
    let thread_a = thread_a.unwrap();
    assert!(thread_a["start_time"].as_str().unwrap() < thread_a["end_time"].as_str().unwrap(), "{thread_a}");
    for r in &got {
        assert_eq!(r.body["rule_id"], rule_id.as_str());
        assert!(r.body["feedback_stats"].is_object() && r.body["start_time"].is_string(), "the usual keys");
    }

    // c keeps talking: a turn 20 s ago, taken by a cycle, then held across
    // a kill -9.
    let c_late = turn(9, Some("c"), 20);
    assert!(c.post(server.at("/runs/batch")).json(&json!({"post": [c_late]})).send().unwrap().status().is_success());
    let cycles = || -> Vec<Value> {
        let url = server.at(&format!("/api/v1/runs/rules/{rule_id}/cycles"));
        server.client().get(url).send().unwrap().json::<Value>().unwrap().as_array().unwrap().clone()
    };
    let seen = || cycles().iter().map(|c| c["candidates"].as_i64().unwrap_or(0)).sum::<i64>();
    wait_until("the late turn of c in a cycle", || seen() == 9);
    assert!(!sends(&receiver.received()).contains_key("c"), "c got a new turn: not idle yet");
    server = server.crash_and_restart();

    let c_all: Vec<&Value> = c_early.iter().chain([&c_late]).collect();
    let got = receiver.wait_until("thread c, once idle", |r| sends(r).contains_key("c"));
    let s = sends(&got);
    assert_eq!(s["c"], vec![ids(&c_all)], "c once, with all its runs");
    assert_eq!((s["a"].len(), s["b"].len()), (1, 1), "a and b were sent once each");
    let lone_id = lone["id"].as_str().unwrap();
    assert!(got.iter().all(|r| !r.run_ids().iter().any(|id| id == lone_id)), "a run of no thread is no thread's");

    // Every thread run is in the queue once, and logged with both actions.
    let c = server.client();
    let queued: Value =
        c.get(server.at(&format!("/api/v1/annotation-queues/{queue}/runs"))).send().unwrap().json().unwrap();
    let mut queued: Vec<String> = ids(&queued.as_array().unwrap().iter().collect::<Vec<_>>());
    let mut threaded: Vec<String> = ids(&all.iter().copied().filter(|r| r["id"] != lone["id"]).collect::<Vec<_>>());
    threaded.push(c_late["id"].as_str().unwrap().into());
    queued.sort();
    threaded.sort();
    assert_eq!(queued, threaded);
    let logs: Value = c.get(server.at(&format!("/api/v1/runs/rules/{rule_id}/logs"))).send().unwrap().json().unwrap();
    let logs = logs.as_array().unwrap();
    assert_eq!(logs.len(), threaded.len());
    for l in logs {
        assert_eq!(l["add_to_annotation_queue"]["outcome"], "success", "{l}");
        assert!(matches!(l["webhooks"]["outcome"].as_str(), Some("success" | "pending")), "{l}");
        assert!(l["thread_id"].is_string(), "{l}");
    }

    // A turn that reaches a after it was sent: a new idle period, with it alone.
    let a_again = turn(10, Some("a"), 59);
    assert!(c.post(server.at("/runs/batch")).json(&json!({"post": [a_again]})).send().unwrap().status().is_success());
    let got = receiver.wait_until("a's second period", |r| sends(r)["a"].len() == 2);
    let s = sends(&got);
    assert_eq!(s["a"][1], vec![a_again["id"].as_str().unwrap().to_string()]);
    assert_eq!((s["b"].len(), s["c"].len()), (1, 1));
}
