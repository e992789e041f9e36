//! Talking to a running server from the command line: where it is, the
//! API key, and calls that answer the API's JSON or fail with its
//! `detail`. Used by `runhook deliveries` and `runhook plugin upload`.

use anyhow::Context;
use clap::Args;
use serde_json::Value;

/// Where the server is and how to talk to it.
#[derive(Debug, Clone, Args)]
pub(super) struct ServerArgs {
    /// The server's base URL.
    #[arg(long, env = "RUNHOOK_SERVER", default_value = "http://127.0.0.1:1984")]
    pub(super) server: String,
    /// The API key.
    #[arg(long, env = "RUNHOOK_API_KEY", hide_env_values = true)]
    pub(super) api_key: String,
    /// Print the API's JSON instead of text.
    #[arg(long)]
    pub(super) json: bool,
}

/// Calls `path` without a body.
pub(super) async fn call(
    server: &ServerArgs,
    method: reqwest::Method,
    path: &str,
    query: &[(&str, String)],
) -> anyhow::Result<Value> {
    call_with(server, method, path, query, None).await
}

/// Calls `path` with an optional JSON body.
pub(super) async fn call_with(
    server: &ServerArgs,
    method: reqwest::Method,
    path: &str,
    query: &[(&str, String)],
    body: Option<&Value>,
) -> anyhow::Result<Value> {
    let mut req = request(server, method, path).query(query);
    if let Some(body) = body {
        req = req.json(body);
    }
    answer(server, path, req).await.map(|(_, body)| body)
}

/// POSTs `bytes` to `path`; the status and the JSON answer.
pub(super) async fn post_bytes(
    server: &ServerArgs,
    path: &str,
    query: &[(&str, String)],
    bytes: Vec<u8>,
) -> anyhow::Result<(reqwest::StatusCode, Value)> {
    let req = request(server, reqwest::Method::POST, path)
        .query(query)
        .header(reqwest::header::CONTENT_TYPE, "application/wasm")
        .body(bytes);
    answer(server, path, req).await
}

fn request(server: &ServerArgs, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
    let url = format!("{}{path}", server.server.trim_end_matches('/'));
    reqwest::Client::new().request(method, url).header("x-api-key", &server.api_key)
}

async fn answer(
    server: &ServerArgs,
    path: &str,
    req: reqwest::RequestBuilder,
) -> anyhow::Result<(reqwest::StatusCode, Value)> {
    let url = format!("{}{path}", server.server.trim_end_matches('/'));
    let resp = req.send().await.with_context(|| format!("cannot reach {}", server.server))?;
    let status = resp.status();
    let body: Value = resp.json().await.with_context(|| format!("{url}: the answer is not JSON"))?;
    if !status.is_success() {
        let detail = body.get("detail").and_then(Value::as_str).unwrap_or("no detail");
        anyhow::bail!("{url}: HTTP {status}: {detail}");
    }
    Ok((status, body))
}
