//! Alerts: backtests (`POST /api/v1/alerts/backtest`) over stored runs with
//! a known spike of errors return when the alert would have fired (warning,
//! then critical) and resolved, with the series, checking the alert as
//! saving does and creating nothing; a saved alert (`/api/v1/alerts`) on
//! live runs notifies through the outbox, once per change, across a kill -9.

use serde_json::{Value, json};

use crate::common::receiver::{Received, Receiver};
use crate::common::server::Server;
use crate::common::{expect, wait_until};

/// A run a minute over the last three hours, each a second long; those
/// started 120 to 101 minutes ago errored. Returns when the spike began.
fn history(server: &Server) -> chrono::DateTime<chrono::Utc> {
    let now = chrono::Utc::now();
    let runs: Vec<Value> = (1..=180)
        .map(|i: i64| {
            let start = now - chrono::Duration::minutes(i);
            json!({"id": format!("0193b8f2-0000-7000-a000-{i:012}"), "name": "call", "run_type": "llm",
                   "session_name": "spiky", "start_time": start.to_rfc3339(),
                   "end_time": (start + chrono::Duration::seconds(1)).to_rfc3339(),
                   "error": if (101..=120).contains(&i) { Some("RateLimitError") } else { None }})
        })
        .collect();
    let resp = server.client().post(server.at("/runs/batch")).json(&json!({"post": runs})).send().unwrap();
    assert!(resp.status().is_success(), "{}", resp.text().unwrap());
    now - chrono::Duration::minutes(120)
}

fn minutes_from(t: &Value, from: chrono::DateTime<chrono::Utc>) -> f64 {
    let at: chrono::DateTime<chrono::Utc> = t.as_str().unwrap().parse().unwrap();
    (at - from).num_milliseconds() as f64 / 60_000.0
}

#[test]
fn a_backtest_finds_a_known_spike() {
    let server = Server::start();
    let c = server.client();
    let spike = history(&server);
    let alert = json!({"display_name": "errors", "session_name": "spiky", "metric": {"kind": "error_rate"},
                       "window_minutes": 10, "warning": 0.2, "critical": 0.5});
    let resp = c.post(server.at("/api/v1/alerts/backtest")).json(&json!({"alert": alert, "hours": 3})).send().unwrap();
    assert_eq!(resp.status(), 200);
    let t: Value = resp.json().unwrap();
    assert_eq!((t["scanned"].as_u64(), t["complete"].as_bool()), (Some(180), Some(true)), "{t}");
    assert_eq!(t["step_seconds"], 60);
    let points = t["points"].as_array().unwrap();
    assert_eq!(points.len(), 180);
    let events = t["events"].as_array().unwrap();
    let kinds: Vec<(&str, &str)> =
        events.iter().map(|e| (e["event"].as_str().unwrap(), e["to"].as_str().unwrap())).collect();
    assert_eq!(kinds, [("triggered", "warning"), ("triggered", "critical"), ("resolved", "ok")], "{events:?}");
    // Three errored runs of ten pass 0.2, six pass 0.5; the spike's 20
    // minutes end 100 minutes ago, and eight minutes later two of ten are left.
    let at = |i: usize| minutes_from(&events[i]["time"], spike);
    assert!((2.0..=4.0).contains(&at(0)), "warning at {} min", at(0));
    assert!((5.0..=7.0).contains(&at(1)), "critical at {} min", at(1));
    assert!((27.0..=30.0).contains(&at(2)), "resolved at {} min", at(2));
    assert_eq!(events[2]["incident_started"], events[0]["time"], "one incident");
    let worst = points.iter().filter(|p| p["level"] == "critical").count();
    assert!((15..=25).contains(&worst), "{worst} critical points");
    // Nothing was created.
    let rules: Value = c.get(server.at("/api/v1/runs/rules")).send().unwrap().json().unwrap();
    assert_eq!(rules, json!([]));

    // Latency and a filter: every call took a second.
    let alert = json!({"display_name": "slow", "session_name": "spiky", "metric": {"kind": "latency_p95"},
                       "filter": "eq(status, \"success\")", "window_minutes": 60, "critical": 0.5});
    let t: Value = c
        .post(server.at("/api/v1/alerts/backtest"))
        .json(&json!({"alert": alert, "hours": 1}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(t["points"][59]["value"], 1.0, "{t}");
    assert_eq!(t["events"][0]["to"], "critical");
}

#[test]
fn a_backtest_checks_the_alert_as_saving_will() {
    let server = Server::start();
    history(&server);
    let c = server.client();
    let base = json!({"display_name": "errors", "session_name": "spiky", "metric": {"kind": "error_rate"},
                      "window_minutes": 10, "warning": 0.2, "critical": 0.5});
    let with = |changes: Value| {
        let mut a = base.clone();
        for (k, v) in changes.as_object().unwrap() {
            if v.is_null() {
                a.as_object_mut().unwrap().remove(k);
            } else {
                a[k] = v.clone();
            }
        }
        c.post(server.at("/api/v1/alerts/backtest")).json(&json!({"alert": a})).send().unwrap()
    };
    let bad = reqwest::StatusCode::BAD_REQUEST;
    expect(with(json!({"metric": null})), bad, "metric is required");
    expect(with(json!({"metric": {"kind": "p42"}})), bad, "metric");
    expect(with(json!({"metric": {"kind": "feedback_avg"}})), bad, "key");
    expect(with(json!({"window_minutes": 61})), bad, "window_minutes");
    expect(with(json!({"warning": null, "critical": null})), bad, "threshold");
    expect(with(json!({"warning": 0.6})), bad, "critical (0.5) must be above warning (0.6)");
    expect(with(json!({"evaluate_every_seconds": 5})), bad, "evaluate_every_seconds");
    expect(with(json!({"filter": "eq(status"})), bad, "filter");
    expect(with(json!({"session_name": "nowhere"})), bad, "no project named");
    expect(with(json!({"colour": "red"})), bad, "colour");
    let hours =
        c.post(server.at("/api/v1/alerts/backtest")).json(&json!({"alert": base, "hours": 1000})).send().unwrap();
    expect(hours, bad, "hours");
}

/// A saved alert on live runs: one errored run makes it warn, three make it
/// critical; a kill -9 and restart in between sends nothing twice; once
/// the runs leave the one-minute window it resolves, under the same
/// incident key. Each notification is a signed delivery.
#[test]
fn a_saved_alert_notifies_worsen_worsen_resolved_once_across_a_restart() {
    let receiver = Receiver::start();
    let mut server = Server::start();
    let c = server.client();
    let base = json!({"display_name": "errors", "session_name": "live", "metric": {"kind": "error_count"},
                      "window_minutes": 1, "warning": 0, "critical": 2, "evaluate_every_seconds": 10,
                      "reminder_minutes": 0, "signing_secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"});
    let refused = c.post(server.at("/api/v1/alerts")).json(&base).send().unwrap();
    expect(refused, reqwest::StatusCode::BAD_REQUEST, "webhook");
    let mut alert = base.clone();
    alert["webhooks"] = json!([{"url": receiver.at("/alert"), "headers": {"x-team": "sre-secret"}}]);
    let created: Value = c.post(server.at("/api/v1/alerts")).json(&alert).send().unwrap().json().unwrap();
    let id = created["id"].as_str().expect("the alert is created").to_string();
    assert_eq!(created["state"]["level"], "ok");
    assert!(!created.to_string().contains("sre-secret"), "a header value came back: {created}");

    let errored = |i: usize| {
        json!({"id": format!("0193b8f2-0000-7000-b000-{i:012}"), "name": "call", "run_type": "llm",
               "session_name": "live", "start_time": chrono::Utc::now().to_rfc3339(),
               "end_time": chrono::Utc::now().to_rfc3339(), "error": "RateLimitError"})
    };
    let post = |server: &Server, runs: Vec<Value>| {
        let resp = server.client().post(server.at("/runs/batch")).json(&json!({"post": runs})).send().unwrap();
        assert!(resp.status().is_success());
    };
    let events = |r: &[Received]| -> Vec<(String, String)> {
        r.iter().map(|r| (r.body["event"].as_str().unwrap().into(), r.body["level"].as_str().unwrap().into())).collect()
    };
    post(&server, vec![errored(1)]);
    receiver.wait_until("the warning", |r| r.len() == 1);
    post(&server, vec![errored(2), errored(3)]);
    let got = receiver.wait_until("the critical", |r| r.len() == 2);
    assert_eq!(events(&got), [("triggered".into(), "warning".into()), ("triggered".into(), "critical".into())]);
    assert_eq!(got[1].body["value"], 3.0);
    assert_eq!(got[1].body["threshold"], 2.0);
    assert!(got.iter().all(|r| r.headers.contains_key("webhook-signature")), "notifications are signed");

    // Killed and restarted: evaluations go on from the stored state.
    server = server.crash_and_restart();
    let evaluated = || -> Value {
        let v: Value = server.client().get(server.at(&format!("/api/v1/alerts/{id}"))).send().unwrap().json().unwrap();
        v["state"]["evaluated_at"].clone()
    };
    let before = evaluated();
    wait_until("an evaluation after the restart", || evaluated() != before);
    assert_eq!(receiver.received().len(), 2, "the restart sent nothing again");

    // The runs leave the window: resolved, the same incident.
    let got = receiver.wait_until("the resolve", |r| r.len() == 3);
    assert_eq!(events(&got)[2], ("resolved".into(), "ok".into()));
    let keys: Vec<&Value> = got.iter().map(|r| &r.body["incident_key"]).collect();
    assert!(keys.iter().all(|k| *k == keys[0]), "one incident: {keys:?}");
    let view: Value = server.client().get(server.at(&format!("/api/v1/alerts/{id}"))).send().unwrap().json().unwrap();
    assert_eq!((view["state"]["level"].as_str(), view["state"]["incident_key"].is_null()), (Some("ok"), true));

    // Changed (a PATCH keeps the webhooks), then deleted.
    let c = server.client();
    let patched: Value = c
        .patch(server.at(&format!("/api/v1/alerts/{id}")))
        .json(&json!({"critical": 5}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!((patched["critical"].as_f64(), patched["webhooks"].as_array().map(Vec::len)), (Some(5.0), Some(1)));
    assert!(c.delete(server.at(&format!("/api/v1/alerts/{id}"))).send().unwrap().status().is_success());
    assert_eq!(c.get(server.at(&format!("/api/v1/alerts/{id}"))).send().unwrap().status(), 404);
}
