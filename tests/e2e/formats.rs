//! Message formats on rule webhooks, and LangSmith's rule-level PagerDuty
//! alert action: one rule sends each payload as is, in the Discord format,
//! and as a PagerDuty event to the configured Events API URL (a local
//! receiver here); the definition is checked as saving does, and the
//! integration key never comes back.

use serde_json::{Value, json};

use crate::common::expect;
use crate::common::receiver::Receiver;
use crate::common::server::Server;

#[test]
fn a_rule_sends_in_formats_and_pages_through_its_pagerduty_alert() {
    let receiver = Receiver::start();
    let events_url = receiver.at("/v2/enqueue");
    let server = Server::start_with(&[("RUNHOOK_DELIVERY_PAGERDUTY_EVENTS_URL", events_url.as_str())], None);
    let c = server.client();
    let base = json!({
        "display_name": "failed calls", "session_name": "formats", "interval_seconds": 1,
        "filter": "eq(status, \"error\")",
        "webhooks": [{"url": receiver.at("/raw")}, {"url": receiver.at("/discord"), "format": {"builtin": "discord"}}],
        "alerts": [{"type": "pagerduty", "routing_key": "R0UT1NGKEY", "summary": "LLM call failed", "severity": "critical"}],
    });
    let with = |changes: Value| {
        let mut rule = base.clone();
        for (k, v) in changes.as_object().unwrap() {
            rule[k] = v.clone();
        }
        c.post(server.at("/api/v1/runs/rules")).json(&rule).send().unwrap()
    };
    let bad = reqwest::StatusCode::BAD_REQUEST;
    expect(with(json!({"alerts": [{"type": "pagerduty", "routing_key": " "}]})), bad, "alerts[0].routing_key");
    expect(with(json!({"alerts": [{"type": "opsgenie", "routing_key": "k"}]})), bad, "opsgenie");
    expect(with(json!({"alerts": [{"type": "pagerduty", "routing_key": "k", "severity": "sev1"}]})), bad, "sev1");
    expect(with(json!({"webhooks": [{"url": receiver.at("/x"), "format": "irc"}]})), bad, "webhooks[0].format");
    expect(with(json!({"webhooks": [{"url": receiver.at("/x"), "format": "pagerduty"}]})), bad, "routing_key");
    expect(with(json!({"group_by": "thread_id"})), bad, "alerts");
    expect(
        with(json!({"plugins": {"match": {"builtin": "slack"}}})),
        bad,
        "plugins.match: the shipped formats are transform",
    );
    expect(
        with(json!({"plugins": {"transform": {"builtin": "irc"}}})),
        bad,
        "plugins.transform: no format named \"irc\"",
    );

    let created = with(json!({}));
    assert_eq!(created.status(), 200);
    let rule: Value = created.json().unwrap();
    assert!(!rule.to_string().contains("R0UT1NGKEY"), "the integration key came back: {rule}");
    assert_eq!(
        rule["alerts"],
        json!([{"type": "pagerduty", "routing_key": "***", "summary": "LLM call failed",
                                       "severity": "critical"}])
    );
    assert_eq!(rule["webhooks"][1]["format"], "discord", "written back as its name");
    let id = rule["id"].as_str().unwrap().to_string();
    // A PATCH of something else keeps the alert and the formats.
    let patched: Value = c
        .patch(server.at(&format!("/api/v1/runs/rules/{id}")))
        .json(&json!({"display_name": "failed LLM calls",
            "sampling_rate": 1.0}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(
        (patched["alerts"].as_array().map(Vec::len), &patched["webhooks"][1]["format"]),
        (Some(1), &json!("discord"))
    );

    let now = chrono::Utc::now().to_rfc3339();
    let runs = json!({"post": [
        {"id": "0193b8f2-0000-7000-c000-000000000001", "name": "ChatModel", "run_type": "llm", "session_name": "formats",
         "start_time": now, "end_time": now, "error": "RateLimitError: slow down"},
        {"id": "0193b8f2-0000-7000-c000-000000000002", "name": "ChatModel", "run_type": "llm", "session_name": "formats",
         "start_time": now, "end_time": now, "outputs": {"text": "fine"}},
    ]});
    assert!(c.post(server.at("/runs/batch")).json(&runs).send().unwrap().status().is_success());
    let got = receiver.wait_until("the three deliveries", |r| r.len() == 3);
    let at =
        |path: &str| got.iter().find(|r| r.path == path).unwrap_or_else(|| panic!("nothing at {path}")).body.clone();
    assert_eq!(at("/raw")["runs"].as_array().map(Vec::len), Some(1), "only the failed run");
    let discord = at("/discord");
    assert_eq!(discord["content"], "Run failed: ChatModel (llm)");
    assert_eq!(discord["allowed_mentions"], json!({"parse": []}));
    assert!(discord["embeds"][0]["description"].as_str().unwrap().contains("RateLimitError: slow down"));
    let event = at("/v2/enqueue");
    assert_eq!(event["routing_key"], "R0UT1NGKEY");
    assert_eq!(event["event_action"], "trigger");
    assert_eq!(event["payload"]["summary"], "LLM call failed");
    assert_eq!(event["payload"]["severity"], "critical");
    assert_eq!(event["dedup_key"], format!("runhook-rule-{id}-0193b8f2-0000-7000-c000-000000000001"));

    // Three deliveries, one per target.
    let deliveries: Value =
        c.get(server.at(&format!("/api/v1/deliveries?rule_id={id}"))).send().unwrap().json().unwrap();
    let mut urls: Vec<&str> = deliveries.as_array().unwrap().iter().map(|d| d["url"].as_str().unwrap()).collect();
    urls.sort();
    assert_eq!(urls, [receiver.at("/discord"), receiver.at("/raw"), events_url.clone()], "{deliveries}");
}
