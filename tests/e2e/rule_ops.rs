//! LangSmith's rule operations runhook lacked: the cursor-paged log
//! (`logs/v2`), `POST /runs/rules/trigger` with `rule_ids`; and what the
//! payload's runs carry for receivers: `error`, `tags`, and `app_path`
//! leading to the run's page on runhook's dashboard.

use serde_json::{Value, json};

use crate::common::receiver::Receiver;
use crate::common::server::Server;
use crate::common::wait_until;

const HOUR: u64 = 3600;

fn create(server: &Server, rule: &Value) -> String {
    let resp = server.client().post(server.at("/api/v1/runs/rules")).json(rule).send().unwrap();
    assert!(resp.status().is_success(), "{}", resp.text().unwrap());
    resp.json::<Value>().unwrap()["id"].as_str().unwrap().to_string()
}

fn runs(project: &str, from: usize, n: usize) -> Value {
    let posts: Vec<Value> = (from..from + n)
        .map(|i| {
            json!({"id": format!("0193b8f2-0000-7000-b000-{i:012}"), "name": format!("r{i}"), "run_type": "llm",
                   "session_name": project, "start_time": "2026-12-04T10:00:00Z", "end_time": "2026-12-04T10:00:01Z",
                   "error": format!("RateLimitError {i}"), "tags": ["prod", format!("t{i}")]})
        })
        .collect();
    json!({"post": posts})
}

#[test]
fn the_payload_carries_error_tags_and_a_link_to_the_run() {
    let receiver = Receiver::start();
    let server = Server::start();
    let c = server.client();
    create(
        &server,
        &json!({"display_name": "e", "session_name": "ops", "webhooks": [{"url": receiver.at("/h")}], "batch_ms": 0}),
    );
    assert!(c.post(server.at("/runs/batch")).json(&runs("ops", 0, 1)).send().unwrap().status().is_success());
    wait_until("the delivery", || !receiver.received().is_empty());
    let run = receiver.received()[0].body["runs"][0].clone();
    assert_eq!(run["error"], "RateLimitError 0", "{run}");
    assert_eq!(run["tags"], json!(["prod", "t0"]));
    let app_path = run["app_path"].as_str().unwrap();
    assert_eq!(app_path, format!("/ui/runs/{}", run["id"].as_str().unwrap()));
    let page = reqwest::blocking::get(server.at(app_path)).unwrap();
    assert_eq!(page.status(), 200, "the link leads to the dashboard's page");
}

#[test]
fn logs_page_by_cursor_and_rules_trigger_by_id() {
    let receiver = Receiver::start();
    let server = Server::start();
    let c = server.client();
    // Hour-long intervals without wake-ups: only a trigger runs a cycle.
    let rule = |name: &str| {
        json!({"display_name": name, "session_name": "ops", "webhooks": [{"url": receiver.at(&format!("/{name}"))}],
               "interval_seconds": HOUR, "wake_on_ingest": false})
    };
    let (a, b) = (create(&server, &rule("a")), create(&server, &rule("b")));
    let first_cycle = |id: &str| -> bool {
        let v: Value = c.get(server.at(&format!("/api/v1/runs/rules/{id}"))).send().unwrap().json().unwrap();
        !v["last_cycle"].is_null()
    };
    wait_until("the first cycles", || first_cycle(&a) && first_cycle(&b));
    assert!(c.post(server.at("/runs/batch")).json(&runs("ops", 0, 7)).send().unwrap().status().is_success());

    let only_a = c.post(server.at("/api/v1/runs/rules/trigger")).json(&json!({"rule_ids": [a]})).send().unwrap();
    assert_eq!(only_a.json::<Value>().unwrap(), json!({"triggered": [a]}));
    let sent = |path: &str| {
        receiver
            .received()
            .iter()
            .filter(|r| r.path == path)
            .map(|r| r.body["runs"].as_array().unwrap().len())
            .sum::<usize>()
    };
    wait_until("rule a's delivery", || sent("/a") == 7);
    assert_eq!(sent("/b"), 0, "rule b was not triggered");

    // The log, three lines a page, each line once, in the order of the whole log.
    let all: Value = c.get(server.at(&format!("/api/v1/runs/rules/{a}/logs"))).send().unwrap().json().unwrap();
    let mut paged = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let url = match &cursor {
            Some(cur) => format!("/api/v1/runs/rules/{a}/logs/v2?limit=3&cursor={cur}"),
            None => format!("/api/v1/runs/rules/{a}/logs/v2?limit=3"),
        };
        let page: Value = c.get(server.at(&url)).send().unwrap().json().unwrap();
        paged.extend(page["logs"].as_array().unwrap().iter().map(|l| l["run_id"].clone()));
        if page["has_more"] == false {
            assert!(page["cursor"].is_null());
            break;
        }
        cursor = Some(page["cursor"].as_str().unwrap().to_string());
        assert!(paged.len() < 10, "pages repeat");
    }
    let whole: Vec<Value> = all.as_array().unwrap().iter().map(|l| l["run_id"].clone()).collect();
    assert_eq!((paged.len(), &paged), (7, &whole));
    let bad = c.get(server.at(&format!("/api/v1/runs/rules/{a}/logs/v2?cursor=nonsense"))).send().unwrap();
    assert_eq!(bad.status(), 400);

    // Every enabled rule without rule_ids; unknown ids and dataset rules are refused.
    let every: Value = c.post(server.at("/api/v1/runs/rules/trigger")).send().unwrap().json().unwrap();
    assert_eq!(every["triggered"].as_array().unwrap().len(), 2, "{every}");
    wait_until("rule b's delivery", || sent("/b") == 7);
    let unknown = json!({"rule_ids": ["0193b8f2-0000-7000-b000-999999999999"]});
    assert_eq!(c.post(server.at("/api/v1/runs/rules/trigger")).json(&unknown).send().unwrap().status(), 404);
    let dataset = json!({"dataset_id": "0193b8f2-0000-7000-b000-999999999999"});
    assert_eq!(c.post(server.at("/api/v1/runs/rules/trigger")).json(&dataset).send().unwrap().status(), 400);
}
