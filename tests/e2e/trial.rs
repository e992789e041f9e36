//! Trying a rule before saving it (`POST /api/v1/runs/rules/validate`):
//! the filter, the match plugin, the queue, the dataset, a thread rule's
//! threads, the transform and the evaluator over
//! stored runs, with nothing sent and nothing stored; the same
//! validation as saving.

use serde_json::{Value, json};

use crate::common::plugin;
use crate::common::receiver::Receiver;
use crate::common::server::Server;

/// Ten finished runs of project `tried`, started within the last hour:
/// even ones are LLM calls, every third one errored.
fn ingest(server: &Server) -> Vec<String> {
    let now = chrono::Utc::now();
    let runs: Vec<Value> = (0..10)
        .map(|i| {
            let start = now - chrono::Duration::minutes(50 - i);
            let errored = i % 3 == 0;
            json!({
                "id": format!("0193b8f2-0000-7000-9000-{i:012}"),
                "name": format!("call-{i}"),
                "run_type": if i % 2 == 0 { "llm" } else { "chain" },
                "session_name": "tried",
                "start_time": start.to_rfc3339(),
                "end_time": (start + chrono::Duration::seconds(1)).to_rfc3339(),
                "error": if errored { Some("RateLimitError: slow down") } else { None },
                "inputs": {"messages": [{"role": "user", "content": "hi", "api_key": "sk-secret"}]},
                "outputs": {"output": if i == 4 { "x".repeat(300) } else { "short".into() }},
            })
        })
        .collect();
    let resp = server.client().post(server.at("/runs/batch")).json(&json!({"post": runs})).send().unwrap();
    assert!(resp.status().is_success(), "{}", resp.text().unwrap());
    runs.iter().map(|r| r["id"].as_str().unwrap().to_string()).collect()
}

fn upload(server: &Server, name: &str) -> Value {
    let bytes = std::fs::read(plugin(name)).unwrap();
    let resp = server.client().post(server.at(&format!("/api/v1/plugins?name={name}"))).body(bytes).send().unwrap();
    assert!(resp.status().is_success(), "{}", resp.text().unwrap());
    resp.json::<Value>().unwrap()["sha256"].clone()
}

fn try_rule(server: &Server, body: &Value) -> (reqwest::StatusCode, Value) {
    let resp = server.client().post(server.at("/api/v1/runs/rules/validate")).json(body).send().unwrap();
    (resp.status(), resp.json().unwrap())
}

fn ids(v: &Value) -> Vec<String> {
    let mut out: Vec<String> = v.as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap().to_string()).collect();
    out.sort();
    out
}

/// The filter and each plugin in turn; the receiver gets nothing, no
/// delivery, rule or feedback is stored.
#[test]
fn a_trial_shows_what_the_rule_would_do_and_does_nothing() {
    let receiver = Receiver::start();
    let server = Server::start();
    let c = server.client();
    let runs = ingest(&server);
    let hook = json!([{"url": receiver.at("/hook"), "headers": {"Authorization": "Bearer never-shown"}}]);

    // The filter alone: the errored runs (0, 3, 6, 9), newest first, one payload.
    let rule =
        json!({"display_name": "t", "session_name": "tried", "filter": "eq(status, \"error\")", "webhooks": hook});
    let (status, t) = try_rule(&server, &json!({"rule": rule, "hours": 2}));
    assert_eq!(status, 200, "{t}");
    assert_eq!((t["scanned"].as_u64(), t["filtered"].as_u64(), t["matched"].as_u64()), (Some(10), Some(4), Some(4)));
    assert_eq!(t["complete"], true);
    let want: Vec<String> = [0, 3, 6, 9].iter().map(|&i| runs[i].clone()).collect();
    assert_eq!(ids(&t["runs"]), want);
    assert_eq!(t["runs"][0]["name"], "call-9", "newest first: {t}");
    assert_eq!(t["payloads"].as_array().unwrap().len(), 1);
    assert_eq!(t["payloads"][0]["body"]["runs"].as_array().unwrap().len(), 4);
    assert!(!t.to_string().contains("never-shown"), "a header value came back: {t}");

    // At most max_candidates runs are read, and the trial says it stopped early.
    let (_, none) = try_rule(&server, &json!({"rule": rule, "hours": 1, "max_candidates": 3}));
    assert_eq!((none["scanned"].as_u64(), none["complete"].as_bool()), (Some(3), Some(false)), "{none}");

    // The match plugin: errored LLM runs only (0, 6), and a transform
    // that redacts the api key in the payload.
    let matcher = json!({"sha256": upload(&server, "llm_errors")});
    let transform = json!({"sha256": upload(&server, "redact"), "config": {"keys": ["api_key"], "replacement": "***"}});
    let rule = json!({"display_name": "t", "session_name": "tried", "webhooks": hook, "max_runs_per_payload": 1,
                      "plugins": {"match": matcher, "transform": transform}});
    let (status, t) = try_rule(&server, &json!({"rule": rule}));
    assert_eq!(status, 200, "{t}");
    assert_eq!((t["filtered"].as_u64(), t["matched"].as_u64()), (Some(10), Some(2)), "{t}");
    assert_eq!(ids(&t["runs"]), vec![runs[0].clone(), runs[6].clone()]);
    let payloads = t["payloads"].as_array().unwrap();
    assert_eq!(payloads.len(), 2, "max_runs_per_payload 1: {t}");
    for p in payloads {
        assert_eq!(p["body"]["runs"][0]["inputs"]["messages"][0]["api_key"], "***", "{p}");
    }

    // The evaluator: feedback for each run shown, none stored.
    let evaluate = json!({"sha256": upload(&server, "output_score")});
    let rule = json!({"display_name": "t", "session_name": "tried", "filter": "eq(run_type, \"llm\")",
                      "plugins": {"evaluate": evaluate}});
    let (status, t) = try_rule(&server, &json!({"rule": rule, "max_runs": 2}));
    assert_eq!(status, 200, "{t}");
    assert_eq!((t["matched"].as_u64(), t["runs"].as_array().unwrap().len()), (Some(5), 2), "{t}");
    assert_eq!(t["payloads"], json!([]), "no webhook, no payload");
    let feedback = t["feedback"].as_array().unwrap();
    assert_eq!(feedback.len(), 2);
    assert_eq!(feedback[0]["feedback"][0]["key"], "answer_usefulness", "{t}");
    // Run 8 is the newest LLM run, run 6 the next; run 4's long answer is not among them.
    assert_eq!(feedback[0]["run_id"], runs[8].as_str());

    // Nothing was stored or sent.
    let rules: Value = c.get(server.at("/api/v1/runs/rules")).send().unwrap().json().unwrap();
    assert_eq!(rules, json!([]));
    let deliveries: Value = c.get(server.at("/api/v1/deliveries")).send().unwrap().json().unwrap();
    assert_eq!(deliveries, json!([]));
    let stored: Value = c.get(server.at("/api/v1/feedback")).send().unwrap().json().unwrap();
    assert_eq!(stored, json!([]), "the evaluator's feedback was stored");
    assert!(receiver.received().is_empty());
}

/// A trial validates as saving does, names the field, and creates no project.
#[test]
fn a_trial_refuses_what_saving_refuses() {
    let server = Server::start();
    ingest(&server);
    let bad = |body: Value, needle: &str| {
        let (status, v) = try_rule(&server, &body);
        assert_eq!(status, 400, "{body} -> {v}");
        let detail = v["detail"].as_str().unwrap();
        assert!(detail.contains(needle), "{needle:?} not in {detail:?}");
    };
    let hook = json!([{"url": "https://hooks.example.com/x"}]);
    bad(
        json!({"rule": {"display_name": "t", "session_name": "tried", "filter": "eq(status, \"error\"", "webhooks": hook}}),
        "filter",
    );
    bad(json!({"rule": {"display_name": "t", "session_name": "nowhere", "webhooks": hook}}), "no project named");
    bad(json!({"rule": {"display_name": "t", "session_name": "tried"}}), "needs an action");
    bad(json!({"rule": {"display_name": "t", "session_name": "tried", "webhooks": hook}, "hours": 0}), "hours");
    bad(json!({"rule": {"display_name": "t", "session_name": "tried", "webhooks": hook}, "days": 1}), "unknown field");
    bad(json!({"rule": []}), "rule");
    let sessions: Value = server.client().get(server.at("/sessions?name=nowhere")).send().unwrap().json().unwrap();
    assert_eq!(sessions, json!([]), "a trial created a project");
}

/// With `rule_id`, the changes overlay the stored rule, as a PATCH does.
#[test]
fn a_trial_of_changes_to_a_stored_rule() {
    let server = Server::start();
    let runs = ingest(&server);
    let c = server.client();
    let rule = json!({"display_name": "stored", "session_name": "tried", "filter": "eq(status, \"error\")",
                      "webhooks": [{"url": "https://hooks.example.com/x"}], "interval_seconds": 3600});
    let stored: Value = c.post(server.at("/api/v1/runs/rules")).json(&rule).send().unwrap().json().unwrap();
    let (status, t) = try_rule(&server, &json!({"rule_id": stored["id"], "rule": {"filter": "eq(name, \"call-2\")"}}));
    assert_eq!(status, 200, "{t}");
    assert_eq!(ids(&t["runs"]), vec![runs[2].clone()]);
    let (_, t) = try_rule(&server, &json!({"rule_id": stored["id"]}));
    assert_eq!(t["matched"].as_u64(), Some(4), "the stored filter: {t}");
    let again: Value = c
        .get(server.at(&format!("/api/v1/runs/rules/{}", stored["id"].as_str().unwrap())))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(again["filter"], "eq(status, \"error\")", "the trial changed the stored rule");
}

/// The annotation queue and the dataset a trial would fill, and a thread
/// rule's threads: only the idle one is acted on. Nothing is stored.
#[test]
fn a_trial_shows_the_queue_the_dataset_and_the_threads() {
    let server = Server::start();
    let c = server.client();
    let runs = ingest(&server);
    let created = |path: &str, name: &str| -> String {
        let v: Value = c.post(server.at(path)).json(&json!({"name": name})).send().unwrap().json().unwrap();
        v["id"].as_str().unwrap().to_string()
    };
    let queue = created("/api/v1/annotation-queues", "review");
    let dataset = created("/api/v1/datasets", "errors");
    let rule = json!({"display_name": "t", "session_name": "tried", "filter": "eq(status, \"error\")",
                      "add_to_annotation_queue_id": queue, "add_to_dataset_id": dataset});
    let (status, t) = try_rule(&server, &json!({"rule": rule}));
    assert_eq!(status, 200, "{t}");
    let mut queued: Vec<String> =
        t["annotation_queue"]["run_ids"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().into()).collect();
    queued.sort();
    assert_eq!(queued, [0, 3, 6, 9].iter().map(|&i| runs[i].clone()).collect::<Vec<_>>(), "{t}");
    let examples = t["examples"].as_array().unwrap();
    assert_eq!(examples.len(), 4, "{t}");
    assert_eq!(examples[0]["dataset_id"], dataset.as_str());
    assert_eq!(examples[0]["outputs"], json!({"output": "short"}));

    // Threads: "old" went quiet 30 minutes ago, "live" 10 seconds ago.
    let now = chrono::Utc::now();
    let turn = |i: usize, thread: Option<&str>, ago: i64| {
        let end = now - chrono::Duration::seconds(ago);
        json!({"id": format!("0193b8f2-0000-7000-9200-{i:012}"), "name": "turn", "run_type": "chain",
               "session_name": "talks", "start_time": (end - chrono::Duration::seconds(1)).to_rfc3339(),
               "end_time": end.to_rfc3339(), "extra": {"metadata": {"thread_id": thread}}})
    };
    let talks = [turn(0, Some("old"), 1900), turn(1, Some("old"), 1800), turn(2, Some("live"), 10), turn(3, None, 60)];
    assert!(c.post(server.at("/runs/batch")).json(&json!({"post": talks})).send().unwrap().status().is_success());
    let rule = json!({"display_name": "t", "session_name": "talks", "group_by": "thread_id",
                      "add_to_annotation_queue_id": queue, "webhooks": [{"url": "https://hooks.example.com/t"}]});
    let (status, t) = try_rule(&server, &json!({"rule": rule}));
    assert_eq!(status, 200, "{t}");
    let threads = t["threads"].as_array().unwrap();
    assert_eq!(threads.len(), 2, "the run of no thread is left out: {t}");
    assert_eq!((threads[0]["thread_id"].as_str(), threads[0]["due"].as_bool()), (Some("old"), Some(true)));
    assert_eq!((threads[1]["thread_id"].as_str(), threads[1]["due"].as_bool()), (Some("live"), Some(false)));
    assert_eq!(threads[0]["run_ids"], json!([talks[0]["id"], talks[1]["id"]]));
    assert_eq!(t["annotation_queue"]["run_ids"], json!([talks[1]["id"], talks[0]["id"]]), "newest first: {t}");
    let payloads = t["payloads"].as_array().unwrap();
    assert_eq!(payloads.len(), 1, "{t}");
    assert_eq!(payloads[0]["body"]["threads"][0]["thread_id"], "old");
    assert_eq!(payloads[0]["body"]["runs"].as_array().unwrap().len(), 2);

    // Nothing was stored.
    let in_queue: Value =
        c.get(server.at(&format!("/api/v1/annotation-queues/{queue}/runs"))).send().unwrap().json().unwrap();
    assert_eq!(in_queue, json!([]));
    let made: Value = c.get(server.at(&format!("/api/v1/examples?dataset={dataset}"))).send().unwrap().json().unwrap();
    assert_eq!(made, json!([]));
}
