//! What the dashboard reads beyond the LangSmith API, through HTTP: a
//! rule's last 24 hours and cycles, the rules that acted on a run, the
//! health series, bulk redelivery's dry run; the page and its files with
//! their security headers; sessions by cookie with their CSRF token.

use serde_json::{Value, json};

use crate::common::receiver::Receiver;
use crate::common::server::{API_KEY, Server};
use crate::common::wait_until;

#[test]
fn a_rule_reports_its_day_its_cycles_and_the_runs_it_acted_on() {
    let receiver = Receiver::start();
    let server = Server::start();
    let c = server.client();
    let rule = json!({"display_name": "errors", "session_name": "dash", "filter": "eq(status, \"error\")",
                      "webhooks": [{"url": receiver.at("/hook")}], "batch_ms": 0});
    let rule: Value = c.post(server.at("/api/v1/runs/rules")).json(&rule).send().unwrap().json().unwrap();
    let id = rule["id"].as_str().unwrap().to_string();
    assert_eq!(rule["last_24h"]["runs_seen"], 0, "{rule}");
    let runs: Vec<Value> = (0..4)
        .map(|i| {
            json!({"id": format!("0193b8f2-0000-7000-a000-{i:012}"), "name": format!("r{i}"), "run_type": "llm",
                   "session_name": "dash", "start_time": "2026-12-04T10:00:00Z", "end_time": "2026-12-04T10:00:01Z",
                   "error": if i < 3 { Some("boom") } else { None }})
        })
        .collect();
    assert!(c.post(server.at("/runs/batch")).json(&json!({"post": runs})).send().unwrap().status().is_success());
    wait_until("three runs delivered", || {
        receiver.received().iter().map(|r| r.body["runs"].as_array().map_or(0, Vec::len)).sum::<usize>() == 3
    });
    let view = || -> Value { c.get(server.at(&format!("/api/v1/runs/rules/{id}"))).send().unwrap().json().unwrap() };
    wait_until("the delivery recorded", || view()["last_24h"]["deliveries_delivered"] == 1);
    let v = view();
    let day = &v["last_24h"];
    assert_eq!(
        (day["runs_seen"].as_u64(), day["runs_matched"].as_u64(), day["deliveries_failed"].as_u64()),
        (Some(4), Some(3), Some(0)),
        "{v}"
    );
    assert!(v["next_cycle_by"].is_string(), "{v}");
    let listed: Value = c.get(server.at("/api/v1/runs/rules")).send().unwrap().json().unwrap();
    assert_eq!(listed[0]["last_24h"], v["last_24h"]);

    let cycles: Value =
        c.get(server.at(&format!("/api/v1/runs/rules/{id}/cycles?limit=5"))).send().unwrap().json().unwrap();
    let actioned: u64 = cycles.as_array().unwrap().iter().map(|c| c["actioned"].as_u64().unwrap()).sum();
    assert_eq!(actioned, 3, "{cycles}");

    let acted: Value = c
        .get(server.at(&format!("/api/v1/runs/{}/rules", runs[0]["id"].as_str().unwrap())))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(acted, json!([{"rule_id": id, "display_name": "errors"}]));
    let not: Value = c
        .get(server.at(&format!("/api/v1/runs/{}/rules", runs[3]["id"].as_str().unwrap())))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(not, json!([]));

    // Nothing failed, so a bulk redelivery would find nothing; it says so without queuing.
    let window = json!({"since": "2026-01-01T00:00:00Z", "dry_run": true});
    let dry: Value = c.post(server.at("/api/v1/deliveries/redeliver")).json(&window).send().unwrap().json().unwrap();
    assert_eq!(dry, json!({"would_redeliver": 0}));
    let delivered = json!({"since": "2026-01-01T00:00:00Z", "status": "delivered", "dry_run": true});
    let dry: Value = c.post(server.at("/api/v1/deliveries/redeliver")).json(&delivered).send().unwrap().json().unwrap();
    assert_eq!(dry, json!({"would_redeliver": 1}));
    let still: Value = c.get(server.at("/api/v1/deliveries")).send().unwrap().json().unwrap();
    assert_eq!(still[0]["status"], "delivered", "a dry run queued the delivery again");

    let health: Value = c.get(server.at("/api/v1/health/series")).send().unwrap().json().unwrap();
    assert!(health["points"].as_array().is_some_and(|p| !p.is_empty()), "{health}");
    assert_eq!(health["outbox"]["depth"], 0.0, "{health}");
    assert!(health["totals"]["runs_ingested"].as_f64().is_some(), "{health}");
}

#[test]
fn the_page_its_files_and_sessions() {
    let server = Server::start();
    let plain = reqwest::blocking::Client::new();
    for path in ["/", "/ui", "/ui/rules/anything/edit"] {
        let resp = plain.get(server.at(path)).send().unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        let csp = resp.headers()["content-security-policy"].to_str().unwrap().to_string();
        assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe"), "{csp}");
        assert_eq!(resp.headers()["x-frame-options"], "DENY");
        assert!(resp.text().unwrap().contains("/ui/assets/app.js"), "{path}");
    }
    let js = plain.get(server.at("/ui/assets/app.js")).send().unwrap();
    assert!(js.headers()["content-type"].to_str().unwrap().starts_with("text/javascript"));
    assert_eq!(plain.get(server.at("/ui/assets/nothing.js")).send().unwrap().status(), 404);
    // The API stays JSON: no page at its unknown routes.
    assert_eq!(plain.get(server.at("/api/v1/nothing")).send().unwrap().status(), 404);

    let wrong = plain.post(server.at("/ui/session")).json(&json!({"api_key": "rh_wrong_key_00000"})).send().unwrap();
    assert_eq!(wrong.status(), 401);
    let bad = plain.post(server.at("/ui/session")).json(&json!({"key": API_KEY})).send().unwrap();
    assert_eq!(bad.status(), 400, "an unknown field is named");
    let signed = plain.post(server.at("/ui/session")).json(&json!({"api_key": API_KEY})).send().unwrap();
    assert_eq!(signed.status(), 200);
    let cookie = signed.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict") && cookie.contains("Path=/"), "{cookie}");
    assert!(!cookie.contains("Secure"), "plain HTTP: a browser would drop a Secure cookie");
    let proxied = plain.post(server.at("/ui/session")).header("x-forwarded-proto", "https");
    let proxied = proxied.json(&json!({"api_key": API_KEY})).send().unwrap();
    assert!(proxied.headers()["set-cookie"].to_str().unwrap().contains("; Secure"), "behind an HTTPS proxy");
    let pair = cookie.split(';').next().unwrap().to_string();
    let csrf = signed.json::<Value>().unwrap()["csrf"].as_str().unwrap().to_string();
    let again: Value = plain.get(server.at("/ui/session")).header("cookie", &pair).send().unwrap().json().unwrap();
    assert_eq!(again["csrf"], csrf.as_str());
    assert_eq!(plain.get(server.at("/api/v1/runs/rules")).header("cookie", &pair).send().unwrap().status(), 200);
    let rule = json!({"display_name": "c", "session_name": "c", "webhooks": [{"url": "https://hooks.example.com/x"}]});
    let no_token = plain.post(server.at("/api/v1/runs/rules")).header("cookie", &pair).json(&rule).send().unwrap();
    assert_eq!(no_token.status(), 403);
    let with = plain.post(server.at("/api/v1/runs/rules")).header("cookie", &pair).header("x-csrf-token", &csrf);
    assert_eq!(with.json(&rule).send().unwrap().status(), 200);
    // A wrong x-api-key is refused even beside a good cookie.
    let both = plain.get(server.at("/api/v1/runs/rules")).header("cookie", &pair).header("x-api-key", "wrong");
    assert_eq!(both.send().unwrap().status(), 401);
    let out =
        plain.delete(server.at("/ui/session")).header("cookie", &pair).header("x-csrf-token", &csrf).send().unwrap();
    assert_eq!(out.status(), 204);
    assert!(out.headers()["set-cookie"].to_str().unwrap().contains("Max-Age=0"));
}
