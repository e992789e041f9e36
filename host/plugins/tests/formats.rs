//! The message formats shipped with runhook, fed the sample alert
//! notification and the sample rule payload (`plugins/samples/`) through
//! the plugin host, and their output checked against the fields and text
//! limits each service's documentation sets (cited in each format's
//! source, `plugins/rust/formats/`). A second pass feeds bodies far over
//! every limit: a 100-run payload with long names and errors, an alert
//! with a 5,000-character name.

// Helpers outside #[test] functions; clippy's test allowance misses them.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use runhook_plugins::{
    Capabilities, Capability, CompileCache, EngineSettings, PluginEngine, PluginFiles, PluginLimits, PluginLocation,
    PluginRegistry, PluginSpec,
};
use serde_json::{Value, json};

struct Formats {
    registry: PluginRegistry,
}

impl Formats {
    fn new() -> Self {
        let engine = PluginEngine::new(&EngineSettings { pooling: false, ..EngineSettings::default() }).unwrap();
        let cache = CompileCache::new(&engine, None).unwrap();
        let files = PluginFiles::under(std::path::Path::new("/nonexistent"), 1 << 20);
        Self { registry: PluginRegistry::new(engine, cache, files) }
    }

    /// `body` through the format `name` with `config`.
    fn render(&self, name: &str, body: &Value, config: &Value) -> Result<Value, String> {
        let spec = PluginSpec {
            name: name.into(),
            location: PluginLocation::Builtin(name.into()),
            required: Capabilities::of(Capability::Transform),
        };
        let handle = self.registry.load(&spec).map_err(|e| e.to_string())?;
        // Generous: this checks output, not speed, on a loaded machine.
        let limits = PluginLimits { deadline: Duration::from_secs(10), ..PluginLimits::default() };
        let mut session = handle.session(self.registry.engine(), limits, "test");
        let out = session.transform(&body.to_string(), &config.to_string()).map_err(|e| e.to_string())?;
        Ok(serde_json::from_str(&out).unwrap())
    }
}

fn sample(file: &str) -> Value {
    let path = format!("{}/../../plugins/samples/{file}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn chars(v: &Value) -> usize {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}")).chars().count()
}

/// The samples, then bodies over every limit.
fn bodies() -> Vec<(&'static str, Value)> {
    let alert = sample("alert-notification.json");
    let mut resolved = alert.clone();
    resolved["event"] = json!("resolved");
    resolved["level"] = json!("ok");
    let mut huge_alert = alert.clone();
    huge_alert["alert"]["display_name"] = json!("x".repeat(5000));
    huge_alert["alert"]["filter"] = json!(format!("eq(name, \"{}\")", "é".repeat(3000)));
    let runs = sample("payload.json");
    let mut huge_runs = runs.clone();
    huge_runs["runs"] = (0..100)
        .map(|i| {
            json!({"id": format!("run-{i}"), "name": "n<&>".repeat(200), "run_type": "llm", "status": "error",
                   "error": format!("@everyone {}", "boom ".repeat(2000)), "app_path": format!("/ui/runs/{i}")})
        })
        .collect();
    vec![("alert", alert), ("resolved", resolved), ("huge alert", huge_alert), ("runs", runs), ("huge runs", huge_runs)]
}

const CONFIG: &str =
    r#"{"base_url": "https://runhook.example.com", "routing_key": "R0UT1NGKEY0000000000000000000000"}"#;

#[test]
fn slack_blocks_keep_to_block_kit_limits() {
    let f = Formats::new();
    for (what, body) in bodies() {
        let out = f.render("slack", &body, &serde_json::from_str(CONFIG).unwrap()).unwrap();
        assert!(chars(&out["text"]) > 0, "{what}: text is the notification fallback");
        let blocks = out["blocks"].as_array().unwrap();
        assert!(!blocks.is_empty() && blocks.len() <= 50, "{what}: {} blocks", blocks.len());
        assert_eq!(blocks[0]["type"], "header");
        assert_eq!(blocks[0]["text"]["type"], "plain_text");
        assert!(chars(&blocks[0]["text"]["text"]) <= 150, "{what}: header");
        for b in blocks {
            if b["type"] == "section" {
                if let Some(text) = b.get("text") {
                    assert_eq!(text["type"], "mrkdwn");
                    assert!(chars(&text["text"]) <= 3000, "{what}: section text");
                }
                for field in b["fields"].as_array().into_iter().flatten() {
                    assert!(chars(&field["text"]) <= 2000, "{what}: field");
                }
                assert!(b["fields"].as_array().map_or(0, Vec::len) <= 10, "{what}: fields");
            }
            if b["type"] == "context" {
                assert!(b["elements"].as_array().unwrap().len() <= 10);
            }
        }
        let all = out.to_string();
        assert!(!all.contains("n<&>"), "{what}: run text is escaped for mrkdwn");
    }
    let out = f.render("slack", &sample("alert-notification.json"), &json!({})).unwrap();
    assert_eq!(out["blocks"][0]["text"]["text"], "[CRITICAL] checkout agent errors: error rate is 0.3125");
    assert!(!out.to_string().contains("https://"), "no base_url: no link");
}

#[test]
fn discord_messages_keep_to_embed_limits() {
    let f = Formats::new();
    for (what, body) in bodies() {
        let out = f.render("discord", &body, &json!({})).unwrap();
        assert!(chars(&out["content"]) <= 2000, "{what}: content");
        assert_eq!(out["allowed_mentions"], json!({"parse": []}), "{what}: pings no one");
        let embeds = out["embeds"].as_array().unwrap();
        assert!(embeds.len() <= 10);
        let mut total = 0;
        for e in embeds {
            assert!(chars(&e["title"]) <= 256, "{what}: title");
            assert!(chars(&e["description"]) <= 4096, "{what}: description");
            assert!(chars(&e["footer"]["text"]) <= 2048);
            let fields = e["fields"].as_array().unwrap();
            assert!(fields.len() <= 25);
            for field in fields {
                assert!(chars(&field["name"]) <= 256 && chars(&field["value"]) <= 1024, "{what}: field");
                total += chars(&field["name"]) + chars(&field["value"]);
            }
            total += chars(&e["title"]) + chars(&e["description"]) + chars(&e["footer"]["text"]);
            assert!(e["color"].as_u64().is_some_and(|c| c <= 0xFF_FF_FF));
        }
        assert!(total <= 6000, "{what}: {total} characters in embeds");
    }
}

#[test]
fn teams_cards_are_adaptive_cards_of_a_version_workflows_renders() {
    let f = Formats::new();
    for (what, body) in bodies() {
        let out = f.render("teams", &body, &serde_json::from_str(CONFIG).unwrap()).unwrap();
        assert_eq!(out["type"], "message");
        let attachments = out["attachments"].as_array().unwrap();
        assert_eq!(attachments.len(), 1);
        assert_eq!(attachments[0]["contentType"], "application/vnd.microsoft.card.adaptive");
        let card = &attachments[0]["content"];
        assert_eq!(card["type"], "AdaptiveCard");
        assert_eq!(card["$schema"], "http://adaptivecards.io/schemas/adaptive-card.json");
        assert_eq!(card["version"], "1.4", "{what}: Workflows renders up to 1.4");
        let body = card["body"].as_array().unwrap();
        assert!(body.iter().all(|e| e["type"].is_string()));
        assert!(out.to_string().len() <= 28 * 1024, "{what}: {} bytes", out.to_string().len());
        if what.contains("alert") {
            assert_eq!(card["actions"][0]["type"], "Action.OpenUrl", "{what}: a link to the alert");
        }
    }
}

#[test]
fn google_chat_messages_have_text_and_a_card() {
    let f = Formats::new();
    for (what, body) in bodies() {
        let out = f.render("google-chat", &body, &serde_json::from_str(CONFIG).unwrap()).unwrap();
        assert!((1..=4096).contains(&chars(&out["text"])), "{what}: text");
        let card = &out["cardsV2"][0];
        assert!(card["cardId"].is_string());
        assert!(chars(&card["card"]["header"]["title"]) > 0);
        let sections = card["card"]["sections"].as_array().unwrap();
        assert!(sections.iter().all(|s| !s["widgets"].as_array().unwrap().is_empty()));
        assert!(out.to_string().len() <= 32_000, "{what}: {} bytes", out.to_string().len());
        assert!(!out.to_string().contains("n<&>"), "{what}: run text is escaped");
    }
}

#[test]
fn pagerduty_events_trigger_and_resolve_one_incident() {
    let f = Formats::new();
    let config: Value = serde_json::from_str(CONFIG).unwrap();
    let all: Vec<Value> = bodies().into_iter().map(|(_, b)| b).collect();
    let [alert, resolved, huge_alert, runs, huge_runs]: [Value; 5] = all.try_into().unwrap();
    let trigger = f.render("pagerduty", &alert, &config).unwrap();
    assert_eq!(trigger["routing_key"], "R0UT1NGKEY0000000000000000000000");
    assert_eq!(trigger["event_action"], "trigger");
    assert_eq!(trigger["dedup_key"], alert["incident_key"]);
    let payload = &trigger["payload"];
    assert_eq!(payload["severity"], "critical");
    assert_eq!(payload["source"], "runhook");
    assert!(chars(&payload["summary"]) <= 1024);
    assert_eq!(payload["timestamp"], "2026-12-05T10:05:00+00:00");
    assert_eq!(payload["custom_details"]["value"], json!(0.3125));
    assert_eq!(
        trigger["links"][0]["href"],
        "https://runhook.example.com/ui/alerts/7f0c5d0e-8a59-4cf0-9d39-3c1a3c8e2b11"
    );

    let resolve = f.render("pagerduty", &resolved, &config).unwrap();
    assert_eq!(resolve["event_action"], "resolve");
    assert_eq!(resolve["dedup_key"], trigger["dedup_key"], "a resolve names the trigger's alert");

    let huge = f.render("pagerduty", &huge_alert, &config).unwrap();
    assert_eq!(chars(&huge["payload"]["summary"]), 1024);
    assert!(chars(&huge["dedup_key"]) <= 255);

    let mut warn_config = config.clone();
    warn_config["severity"] = json!("info");
    warn_config["summary"] = json!("LLM call failed");
    let event = f.render("pagerduty", &runs, &warn_config).unwrap();
    assert_eq!(event["event_action"], "trigger");
    assert_eq!(event["payload"]["severity"], "info", "the configured severity wins");
    assert_eq!(event["payload"]["summary"], "LLM call failed");
    assert_eq!(
        event["dedup_key"],
        "runhook-rule-5b2a0a34-7d7e-4c1f-9a4f-4f1e0c8a9b21-0193b8f3-0a11-7c40-8e21-1f2d3c4b5a69"
    );
    let many = f.render("pagerduty", &huge_runs, &config).unwrap();
    assert_eq!(many["payload"]["severity"], "error", "errored runs without a configured severity");
    assert_eq!(many["payload"]["custom_details"]["runs"].as_array().unwrap().len(), 20);
    assert_eq!(many["payload"]["custom_details"]["more_runs"], 80);

    let missing = f.render("pagerduty", &alert, &json!({})).unwrap_err();
    assert!(missing.contains("config.routing_key is required"), "{missing}");
    let bad = f.render("pagerduty", &alert, &json!({"routing_key": "k", "severity": "sev1"})).unwrap_err();
    assert!(bad.contains("config.severity"), "{bad}");
}

#[test]
fn an_unknown_format_is_refused_by_name() {
    let f = Formats::new();
    let e = f.render("irc", &json!({}), &json!({})).unwrap_err();
    assert!(e.contains("\"irc\"") && e.contains("slack, teams, discord, google-chat, pagerduty"), "{e}");
}
