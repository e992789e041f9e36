//! What the shipped message formats share: the body runhook would deliver,
//! read into one [`Message`] that each format lays out for its service.
//!
//! A format plugin is a transformer: it receives either an alert's
//! notification (`"type": "alert"`, see the README's "Alerts on
//! aggregates") or a rule's webhook payload (`{rule_id, start_time,
//! end_time, runs, feedback_stats}`, possibly rewritten by the rule's own
//! transform plugin first). [`Message::read`] turns either into a title, a
//! one-line summary, facts (label and value), items (one per run) and a
//! link; anything else becomes a message showing the body as JSON, so a
//! format never fails on a shape it does not know.
//!
//! Every format takes the same optional config keys: `base_url` (where
//! runhook's dashboard is served, e.g. `https://runhook.example.com`: links
//! are absolute only with it, and chat services need absolute links) and
//! `title` (replaces the generated title). Texts are cut by characters, as
//! the services count them, with [`cut`].

use runhook_plugin::Value;

/// How bad the message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// An alert is critical, or a rule's payload holds an errored run.
    Critical,
    /// An alert warns.
    Warning,
    /// An alert resolved.
    Resolved,
    /// A rule's payload without errors, or anything else.
    Info,
}

impl Severity {
    /// A short upper-case label: `CRITICAL`, `WARNING`, `RESOLVED`, `INFO`.
    pub fn label(self) -> &'static str {
        match self {
            Self::Critical => "CRITICAL",
            Self::Warning => "WARNING",
            Self::Resolved => "RESOLVED",
            Self::Info => "INFO",
        }
    }

    /// An RGB colour: red, amber, green, blue.
    pub fn rgb(self) -> u32 {
        match self {
            Self::Critical => 0xD9_2D_20,
            Self::Warning => 0xE8_A3_17,
            Self::Resolved => 0x2E_A0_43,
            Self::Info => 0x2F_6F_EB,
        }
    }
}

/// One run of a rule's payload.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    /// The run's name and type, e.g. `ChatOpenAI (llm)`.
    pub title: String,
    /// Its status, latency and error, on one line.
    pub text: String,
    /// Its page, when `base_url` is configured.
    pub link: Option<String>,
    /// Whether it errored.
    pub errored: bool,
}

/// What kind of body was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// An alert's notification, with its event (`triggered`, `reminder`,
    /// `resolved`) and incident key.
    Alert {
        /// The state change.
        event: String,
        /// The key every notification of one incident carries.
        incident_key: String,
    },
    /// A rule's payload.
    Runs {
        /// The rule.
        rule_id: String,
        /// The first run's id, or the rule's id when there is none.
        first_run: String,
    },
    /// A body of another shape.
    Other,
}

/// A body read for people.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// What kind of body it was.
    pub kind: Kind,
    /// How bad.
    pub severity: Severity,
    /// A headline, e.g. `[CRITICAL] error rate of checkout is 0.31`.
    pub title: String,
    /// One sentence.
    pub summary: String,
    /// Label and value pairs.
    pub facts: Vec<(String, String)>,
    /// The runs (a rule's payload only).
    pub items: Vec<Item>,
    /// The page to open, when `base_url` is configured.
    pub link: Option<String>,
    /// When it happened (RFC 3339), if the body says.
    pub time: Option<String>,
}

impl Message {
    /// Reads `body` with the format's `config`.
    pub fn read(body: &Value, config: &Value) -> Self {
        let base = config["base_url"].as_str().map(|b| b.trim_end_matches('/').to_string());
        let link = |path: &Value| match (&base, path.as_str()) {
            (Some(base), Some(path)) if path.starts_with('/') => Some(format!("{base}{path}")),
            _ => None,
        };
        let mut message = if body["type"] == "alert" && body["alert"].is_object() {
            alert(body, link(&body["app_path"]))
        } else if let Some(runs) = body["runs"].as_array() {
            runs_message(body, runs, &link)
        } else {
            other(body)
        };
        if let Some(title) = config["title"].as_str().filter(|t| !t.trim().is_empty()) {
            message.title = title.to_string();
        }
        message
    }
}

/// An alert's notification.
fn alert(body: &Value, link: Option<String>) -> Message {
    let a = &body["alert"];
    let name = text(&a["display_name"], "alert");
    let event = text(&body["event"], "triggered");
    let level = text(&body["level"], "critical");
    let severity = match (event.as_str(), level.as_str()) {
        ("resolved", _) | (_, "ok") => Severity::Resolved,
        (_, "warning") => Severity::Warning,
        _ => Severity::Critical,
    };
    let metric = metric_name(&a["metric"]);
    let value = number(&body["value"]);
    let threshold = number(&body["threshold"]);
    let condition = text(&a["condition"], "above");
    let window = a["window_minutes"].as_u64().unwrap_or(0);
    let title = match event.as_str() {
        "resolved" => format!("[RESOLVED] {name}: {metric} is back to normal"),
        "reminder" => format!("[{}] still: {name}: {metric} is {value}", severity.label()),
        _ => format!("[{}] {name}: {metric} is {value}", severity.label()),
    };
    let summary = match event.as_str() {
        "resolved" => format!("{metric} over the last {window} min is {value}; the incident is resolved."),
        _ => format!("{metric} over the last {window} min is {value}, {condition} the {level} threshold {threshold}."),
    };
    let mut facts = vec![
        ("Alert".to_string(), name),
        ("Level".to_string(), format!("{} (was {})", level, text(&body["previous_level"], "ok"))),
        ("Value".to_string(), value),
        ("Threshold".to_string(), threshold),
        ("Window".to_string(), format!("{window} min")),
    ];
    if let Some(filter) = a["filter"].as_str().filter(|f| !f.is_empty()) {
        facts.push(("Filter".to_string(), filter.to_string()));
    }
    facts.push(("Incident".to_string(), text(&body["incident_key"], "")));
    facts.push(("Since".to_string(), text(&body["incident_started"], "")));
    Message {
        kind: Kind::Alert { event, incident_key: text(&body["incident_key"], "") },
        severity,
        title,
        summary,
        facts,
        items: Vec::new(),
        link,
        time: body["time"].as_str().map(str::to_string),
    }
}

/// A rule's payload.
fn runs_message(body: &Value, runs: &[Value], link: &dyn Fn(&Value) -> Option<String>) -> Message {
    let rule_id = text(&body["rule_id"], "");
    let items: Vec<Item> = runs.iter().map(|run| item(run, link)).collect();
    let errored = items.iter().filter(|i| i.errored).count();
    let severity = if errored > 0 { Severity::Critical } else { Severity::Info };
    let plural = |n: usize| if n == 1 { "" } else { "s" };
    let title = match (runs.len(), errored) {
        (1, 1) => format!("Run failed: {}", items[0].title),
        (1, _) => format!("Run matched: {}", items[0].title),
        (n, 0) => format!("{n} runs matched"),
        (n, e) => format!("{n} runs matched, {e} failed"),
    };
    let window = match (body["start_time"].as_str(), body["end_time"].as_str()) {
        (Some(s), Some(e)) => format!(" between {s} and {e}"),
        _ => String::new(),
    };
    let summary = format!("{} run{} matched rule {rule_id}{window}.", runs.len(), plural(runs.len()));
    let mut facts = vec![("Rule".to_string(), rule_id.clone()), ("Runs".to_string(), runs.len().to_string())];
    if errored > 0 {
        facts.push(("Errored".to_string(), errored.to_string()));
    }
    if let Some(threads) = body["threads"].as_array() {
        facts.push(("Threads".to_string(), threads.len().to_string()));
    }
    let first_run = runs.first().and_then(|r| r["id"].as_str()).unwrap_or(&rule_id).to_string();
    let link = items.first().filter(|_| items.len() == 1).and_then(|i| i.link.clone());
    Message {
        kind: Kind::Runs { rule_id, first_run },
        severity,
        title,
        summary,
        facts,
        items,
        link,
        time: body["end_time"].as_str().map(str::to_string),
    }
}

fn item(run: &Value, link: &dyn Fn(&Value) -> Option<String>) -> Item {
    let name = text(&run["name"], "run");
    let title = match run["run_type"].as_str() {
        Some(t) => format!("{name} ({t})"),
        None => name,
    };
    let error = run["error"].as_str().filter(|e| !e.is_empty());
    let mut parts = vec![text(&run["status"], if error.is_some() { "error" } else { "success" })];
    if let Some(latency) = run["latency"].as_f64() {
        parts.push(format!("{latency:.2} s"));
    }
    if let Some(tokens) = run["total_tokens"].as_u64().filter(|t| *t > 0) {
        parts.push(format!("{tokens} tokens"));
    }
    if let Some(e) = error {
        parts.push(cut(first_line(e), 300));
    }
    Item { title, text: parts.join(" · "), link: link(&run["app_path"]), errored: error.is_some() }
}

/// A body of a shape no format knows: shown as JSON.
fn other(body: &Value) -> Message {
    Message {
        kind: Kind::Other,
        severity: Severity::Info,
        title: "runhook".to_string(),
        summary: cut(&body.to_string(), 2000),
        facts: Vec::new(),
        items: Vec::new(),
        link: None,
        time: None,
    }
}

/// A metric as people say it: `error rate`, `p95 latency (s)`, `average
/// "correctness" feedback`.
pub fn metric_name(metric: &Value) -> String {
    let key = metric["key"].as_str().unwrap_or("");
    match metric["kind"].as_str().unwrap_or("") {
        "run_count" => "run count".into(),
        "error_count" => "error count".into(),
        "error_rate" => "error rate".into(),
        "latency_p50" => "p50 latency (s)".into(),
        "latency_p95" => "p95 latency (s)".into(),
        "latency_p99" => "p99 latency (s)".into(),
        "total_tokens" => "total tokens".into(),
        "total_cost" => "total cost".into(),
        "feedback_avg" => format!("average \"{key}\" feedback"),
        "feedback_count" => format!("\"{key}\" feedback count"),
        other => other.replace('_', " "),
    }
}

/// A number for people: integers without a fraction, others to four
/// significant places; `no data` for null.
pub fn number(v: &Value) -> String {
    match v.as_f64() {
        None => "no data".into(),
        Some(x) if x.fract() == 0.0 && x.abs() < 1e15 => format!("{}", x as i64),
        Some(x) => {
            let digits = (4 - (x.abs().log10().floor() as i32 + 1)).clamp(0, 6) as usize;
            let s = format!("{x:.digits$}");
            if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_string() } else { s }
        }
    }
}

fn text(v: &Value, default: &str) -> String {
    v.as_str().unwrap_or(default).to_string()
}

fn first_line(s: &str) -> &str {
    s.lines().find(|l| !l.trim().is_empty()).unwrap_or(s).trim()
}

/// `s` cut to at most `max` characters, ending in `…` when cut.
pub fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// `&`, `<` and `>` escaped as `&amp;`, `&lt;` and `&gt;`: what Slack's
/// mrkdwn and Google Chat's HTML subset both require of text.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// How many characters `s` has, as the services count them.
pub fn chars(s: &str) -> usize {
    s.chars().count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use runhook_plugin::Value;

    fn json(s: &str) -> Value {
        runhook_plugin::serde_json::from_str(s).expect("test JSON")
    }

    #[test]
    fn an_alert_reads_into_its_change_value_and_incident() {
        let body = json(
            r#"{"type":"alert","event":"triggered","level":"critical","previous_level":"warning",
            "value":0.3125,"threshold":0.2,"incident_key":"runhook-alert-a-1","time":"2026-12-05T10:00:00+00:00",
            "alert":{"display_name":"checkout errors","metric":{"kind":"error_rate"},"window_minutes":5,
            "condition":"above"},"app_path":"/ui/alerts/a"}"#,
        );
        let m = Message::read(&body, &json(r#"{"base_url":"https://rh.example.com/"}"#));
        assert_eq!(m.severity, Severity::Critical);
        assert_eq!(m.title, "[CRITICAL] checkout errors: error rate is 0.3125");
        assert_eq!(m.link.as_deref(), Some("https://rh.example.com/ui/alerts/a"));
        assert_eq!(m.kind, Kind::Alert { event: "triggered".into(), incident_key: "runhook-alert-a-1".into() });
        assert!(m.summary.contains("above the critical threshold 0.2"), "{}", m.summary);
    }

    #[test]
    fn a_payload_reads_into_one_item_per_run() {
        let body = json(
            r#"{"rule_id":"r","runs":[{"id":"1","name":"ChatOpenAI","run_type":"llm","error":"RateLimitError: slow down\nTraceback"},
            {"id":"2","name":"chain","status":"success","latency":1.5}]}"#,
        );
        let m = Message::read(&body, &Value::Null);
        assert_eq!(m.title, "2 runs matched, 1 failed");
        assert_eq!(m.items[0].text, "error · RateLimitError: slow down");
        assert_eq!(m.items[1].text, "success · 1.50 s");
        assert_eq!(m.link, None, "no base_url, no link");
    }

    #[test]
    fn cut_counts_characters() {
        assert_eq!(cut("héllo", 5), "héllo");
        assert_eq!(cut("héllo wörld", 5), "héll…");
        assert_eq!(chars(&cut(&"é".repeat(4000), 3000)), 3000);
        assert_eq!(number(&json("3")), "3");
        assert_eq!(number(&json("0.123456")), "0.1235");
        assert_eq!(number(&Value::Null), "no data");
    }
}
