//! A thousand rules on one project: each delivers exactly the runs its
//! filter selects, and the project's window is read from the store once
//! for all of them (`runhook_rule_window_reads_total`).
//!
//! Rules created at different times start from different watermarks on
//! Postgres (its horizon moves with every transaction); they meet at the
//! first run they share. A first run, which no rule selects, brings them
//! together; the window measured is the next.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use crate::common::receiver::Receiver;
use crate::common::server::Server;

const RULES: usize = 1000;
const RUNS: usize = 100;

/// Run `j`: named `n{j % 10}`, tagged `t{j % 7}`, errored when `j % 4 == 0`.
fn run(j: usize) -> Value {
    json!({"id": format!("0193b8f2-0000-7000-8000-{j:012}"), "name": format!("n{}", j % 10), "run_type": "llm",
           "tags": [format!("t{}", j % 7)], "error": j.is_multiple_of(4).then_some("boom"), "session_name": "many",
           "start_time": "2026-12-04T10:00:00Z", "end_time": "2026-12-04T10:00:01Z"})
}

/// Rule `i`'s filter, and which runs it selects.
fn filter(i: usize) -> (String, BTreeSet<String>) {
    let (text, keep): (String, Box<dyn Fn(usize) -> bool>) = match i % 4 {
        0 => (format!(r#"eq(name, "n{}")"#, i % 10), Box::new(move |j| j % 10 == i % 10)),
        1 => (format!(r#"has(tags, "t{}")"#, i % 7), Box::new(move |j| j % 7 == i % 7)),
        2 => (
            format!(r#"and(eq(error, null), eq(name, "n{}"))"#, i % 10),
            Box::new(move |j| j % 4 != 0 && j % 10 == i % 10),
        ),
        _ => (
            format!(r#"or(has(tags, "t{}"), neq(error, null))"#, i % 7),
            Box::new(move |j| j % 7 == i % 7 || j % 4 == 0),
        ),
    };
    let ids = (0..RUNS).filter(|j| keep(*j)).map(|j| format!("0193b8f2-0000-7000-8000-{j:012}")).collect();
    (text, ids)
}

/// The sum of a counter's series in `/metrics`.
fn counter(server: &Server, name: &str) -> f64 {
    let text = reqwest::blocking::get(server.at("/metrics")).unwrap().text().unwrap();
    text.lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[test]
fn a_thousand_rules_deliver_exactly_their_runs_from_one_read() {
    let receiver = Receiver::start();
    let server = Server::start();
    let client = server.client();
    let mut expected: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for i in 0..RULES {
        let (text, ids) = filter(i);
        let rule = json!({"display_name": format!("rule {i}"), "session_name": "many", "filter": text,
            "interval_seconds": 3600, "webhooks": [{"url": receiver.at(&format!("/r{i}"))}]});
        let resp = client.post(server.at("/api/v1/runs/rules")).json(&rule).send().unwrap();
        assert!(resp.status().is_success(), "{}", resp.text().unwrap());
        expected.insert(format!("/r{i}"), ids);
    }
    // A run no rule selects, seen by every rule: what comes next is one window.
    let warm = json!({"id": "0193b8f2-0000-7000-8000-ffffffffffff", "name": "warm-up", "run_type": "llm",
        "session_name": "many", "start_time": "2026-12-04T09:00:00Z", "end_time": "2026-12-04T09:00:01Z"});
    let resp = client.post(server.at("/runs/batch")).json(&json!({"post": [warm]})).send().unwrap();
    assert!(resp.status().is_success(), "{}", resp.text().unwrap());
    let started = std::time::Instant::now();
    while counter(&server, "runhook_rule_runs_seen_total") < RULES as f64 {
        assert!(started.elapsed().as_secs() < 300, "the rules never all saw the first run");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let reads_before = counter(&server, "runhook_rule_window_reads_total");

    let runs: Vec<Value> = (0..RUNS).map(run).collect();
    let resp = client.post(server.at("/runs/batch")).json(&json!({"post": runs})).send().unwrap();
    assert!(resp.status().is_success(), "{}", resp.text().unwrap());
    let total: usize = expected.values().map(BTreeSet::len).sum();
    let seen =
        receiver.wait_until("every rule's runs", |r| r.iter().map(|r| r.run_ids().len()).sum::<usize>() >= total);

    let mut got: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for r in &seen {
        let ids = got.entry(r.path.clone()).or_default();
        for id in r.run_ids() {
            assert!(ids.insert(id.clone()), "{} got {id} twice", r.path);
        }
    }
    assert_eq!(got.len(), RULES, "every rule delivered");
    for (path, ids) in &expected {
        assert_eq!(got.get(path), Some(ids), "rule {path} delivered other runs than its filter selects");
    }
    let reads = counter(&server, "runhook_rule_window_reads_total") - reads_before;
    assert_eq!(reads, 1.0, "the window of the ingest is read once for the {RULES} rules");
}
