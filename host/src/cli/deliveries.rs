//! `runhook deliveries`: list webhook deliveries, show one with its
//! attempts, redeliver one. A client of a running server's deliveries API.

use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::Value;

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
    /// Queue a delivered or failed delivery again, with the same webhook-id.
    Redeliver {
        #[command(flatten)]
        server: ServerArgs,
        /// The delivery id.
        id: String,
    },
}

/// Where the server is and how to talk to it.
#[derive(Debug, Clone, Args)]
pub(super) struct ServerArgs {
    /// The server's base URL.
    #[arg(long, env = "RUNHOOK_SERVER", default_value = "http://127.0.0.1:1984")]
    server: String,
    /// The API key.
    #[arg(long, env = "RUNHOOK_API_KEY", hide_env_values = true)]
    api_key: String,
    /// Print the API's JSON instead of a table.
    #[arg(long)]
    json: bool,
}

pub(super) fn run(cmd: DeliveriesCommand) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        match cmd {
            DeliveriesCommand::List { server, rule, status, limit } => {
                let mut query = vec![("limit", limit.to_string())];
                query.extend(rule.map(|r| ("rule_id", r)));
                query.extend(status.map(|s| ("status", s)));
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
            DeliveriesCommand::Redeliver { server, id } => {
                let path = format!("/api/v1/deliveries/{id}/redeliver");
                let d = call(&server, reqwest::Method::POST, &path, &[]).await?;
                if !server.json {
                    println!("queued again: {id}");
                }
                print_one(&server, &d)?;
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

async fn call(
    server: &ServerArgs,
    method: reqwest::Method,
    path: &str,
    query: &[(&str, String)],
) -> anyhow::Result<Value> {
    let url = format!("{}{path}", server.server.trim_end_matches('/'));
    let resp = reqwest::Client::new()
        .request(method, &url)
        .header("x-api-key", &server.api_key)
        .query(query)
        .send()
        .await
        .with_context(|| format!("cannot reach {}", server.server))?;
    let status = resp.status();
    let body: Value = resp.json().await.with_context(|| format!("{url}: the answer is not JSON"))?;
    if !status.is_success() {
        let detail = body.get("detail").and_then(Value::as_str).unwrap_or("no detail");
        anyhow::bail!("{url}: HTTP {status}: {detail}");
    }
    Ok(body)
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
