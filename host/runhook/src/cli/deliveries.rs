//! `runhook deliveries`: list webhook deliveries, show one with its
//! attempts, redeliver one or all those of a time window. A client of a
//! running server's deliveries API.

use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use serde_json::Value;

use super::client::{ServerArgs, call, call_with};

#[derive(Debug, Subcommand)]
pub(super) enum DeliveriesCommand {
    /// List deliveries, newest first.
    List {
        #[command(flatten)]
        server: ServerArgs,
        /// Only this rule's.
        #[arg(long)]
        rule: Option<String>,
        /// Only `pending`, `delivered` or `failed` ones.
        #[arg(long)]
        status: Option<String>,
        /// Only those queued since this time: RFC 3339, or an age such as 30m, 2h or 1d
        /// (what `redeliver --since` would take again).
        #[arg(long)]
        since: Option<String>,
        /// How many.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Show one delivery and every attempt.
    Show {
        #[command(flatten)]
        server: ServerArgs,
        /// The delivery id (the `webhook-id` receivers saw).
        id: String,
    },
    /// Queue deliveries again, each with its webhook-id: one by id, or every
    /// failed (or delivered) one queued since a time, as after a receiver's outage.
    Redeliver {
        #[command(flatten)]
        server: ServerArgs,
        /// The delivery id (delivered or failed).
        #[arg(required_unless_present = "since", conflicts_with_all = ["since", "until", "rule", "status"])]
        id: Option<String>,
        /// Every delivery queued since this time: RFC 3339, or an age such as 30m, 2h or 1d.
        #[arg(long)]
        since: Option<String>,
        /// ... and before this time (the same forms; default: now).
        #[arg(long, requires = "since")]
        until: Option<String>,
        /// Only this rule's.
        #[arg(long, requires = "since")]
        rule: Option<String>,
        /// `failed` (the default) or `delivered`.
        #[arg(long, requires = "since")]
        status: Option<String>,
    },
}

pub(super) fn run(cmd: DeliveriesCommand) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        match cmd {
            DeliveriesCommand::List { server, rule, status, since, limit } => {
                let mut query = vec![("limit", limit.to_string())];
                query.extend(rule.map(|r| ("rule_id", r)));
                query.extend(status.map(|s| ("status", s)));
                if let Some(since) = since {
                    query.push(("since", time_arg(&since, chrono::Utc::now())?));
                }
                let list = call(&server, reqwest::Method::GET, "/api/v1/deliveries", &query).await?;
                if server.json {
                    println!("{}", serde_json::to_string_pretty(&list)?);
                } else {
                    print_table(list.as_array().map(Vec::as_slice).unwrap_or_default());
                }
            }
            DeliveriesCommand::Show { server, id } => {
                let d = call(&server, reqwest::Method::GET, &format!("/api/v1/deliveries/{id}"), &[]).await?;
                print_one(&server, &d)?;
            }
            DeliveriesCommand::Redeliver { server, id: Some(id), .. } => {
                let path = format!("/api/v1/deliveries/{id}/redeliver");
                let d = call(&server, reqwest::Method::POST, &path, &[]).await?;
                if !server.json {
                    println!("queued again: {id}");
                }
                print_one(&server, &d)?;
            }
            DeliveriesCommand::Redeliver { server, id: None, since, until, rule, status } => {
                let now = chrono::Utc::now();
                let mut body = serde_json::Map::new();
                body.insert("since".into(), time_arg(since.as_deref().unwrap_or_default(), now)?.into());
                if let Some(until) = until {
                    body.insert("until".into(), time_arg(&until, now)?.into());
                }
                body.extend(rule.map(|r| ("rule_id".to_string(), r.into())));
                body.extend(status.map(|s| ("status".to_string(), s.into())));
                let path = "/api/v1/deliveries/redeliver";
                let done = call_with(&server, reqwest::Method::POST, path, &[], Some(&Value::Object(body))).await?;
                if server.json {
                    println!("{}", serde_json::to_string_pretty(&done)?);
                } else {
                    println!("queued again: {} deliveries", done["redelivered"].as_u64().unwrap_or(0));
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// A time given as RFC 3339 (passed on as given), or as an age before
/// `now`: a number and a unit, `s`, `m`, `h` or `d` (`90m`, `2h`, `1d`).
fn time_arg(raw: &str, now: chrono::DateTime<chrono::Utc>) -> anyhow::Result<String> {
    let raw = raw.trim();
    let unit = match raw.chars().last() {
        Some('s') => 1,
        Some('m') => 60,
        Some('h') => 3600,
        Some('d') => 86_400,
        _ => return Ok(raw.to_string()),
    };
    let Ok(n) = raw[..raw.len() - 1].parse::<i64>() else {
        return Ok(raw.to_string());
    };
    let age = n
        .checked_mul(unit)
        .and_then(chrono::Duration::try_seconds)
        .and_then(|age| now.checked_sub_signed(age))
        .with_context(|| format!("{raw:?} is too long ago"))?;
    Ok(age.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
}

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("-")
}

fn last_class(d: &Value) -> String {
    d["history"].as_array().and_then(|h| h.last()).map(|a| text(a, "class").to_string()).unwrap_or("-".into())
}

fn print_table(list: &[Value]) {
    println!("{:<36}  {:<9}  {:>8}  {:<17}  {:<32}  url", "id", "status", "attempts", "last class", "created");
    for d in list {
        println!(
            "{:<36}  {:<9}  {:>8}  {:<17}  {:<32}  {}",
            text(d, "id"),
            text(d, "status"),
            d["attempts"].as_u64().unwrap_or(0),
            last_class(d),
            text(d, "created_at"),
            text(d, "url"),
        );
    }
}

fn print_one(server: &ServerArgs, d: &Value) -> anyhow::Result<()> {
    if server.json {
        println!("{}", serde_json::to_string_pretty(d)?);
        return Ok(());
    }
    println!("delivery {}  rule {}", text(d, "id"), text(d, "rule_id"));
    println!("  url       {}", text(d, "url"));
    println!("  status    {} after {} attempts", text(d, "status"), d["attempts"]);
    if let Some(e) = d.get("last_error").and_then(Value::as_str) {
        println!("  error     {e}");
    }
    for a in d["history"].as_array().map(Vec::as_slice).unwrap_or_default() {
        println!(
            "  attempt {:>2}  {}  {:>6} ms  {:<17} {}",
            a["attempt"].as_u64().unwrap_or(0),
            text(a, "started_at"),
            a["duration_ms"].as_u64().unwrap_or(0),
            text(a, "class"),
            a.get("error").and_then(Value::as_str).unwrap_or(""),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_or_an_age() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-11-30T12:00:00Z").unwrap().to_utc();
        assert_eq!(time_arg("90m", now).unwrap(), "2026-11-30T10:30:00.000000Z");
        assert_eq!(time_arg("2d", now).unwrap(), "2026-11-28T12:00:00.000000Z");
        assert_eq!(time_arg(" 2026-11-29T08:00:00Z ", now).unwrap(), "2026-11-29T08:00:00Z");
        // Anything else goes to the server as given, which names the problem.
        assert_eq!(time_arg("yesterday", now).unwrap(), "yesterday");
        assert!(time_arg("99999999999999d", now).is_err());
    }
}
