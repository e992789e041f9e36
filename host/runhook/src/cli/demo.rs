//! `runhook demo`: the main job, end to end, in one command.
//!
//! Starts runhook on the embedded store in a temporary directory, starts a
//! local webhook receiver, creates five example rules through the real
//! API (a filter, a match plugin, a transform plugin, and LangSmith's
//! evaluator + feedback-filter pair), sends a realistic mix of traces over
//! the LangSmith ingest API, shows each webhook as it arrives, and ends with
//! a summary per rule. The example plugins are built first when missing.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::backend;
use runhook_core::model::run::dotted_segment;
use runhook_core::model::{RunId, Timestamp};
use runhook_server::config::{Config, DeliverySettings, PluginSettings};

#[derive(Debug, Args)]
pub(super) struct DemoArgs {
    /// Directory holding the built example plugins (built when missing).
    #[arg(long, default_value = "plugins/rust/target/wasm32-wasip2/release")]
    plugins_dir: PathBuf,
    /// Keep the data here instead of a temporary directory.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Give up waiting for the webhooks after this many seconds.
    #[arg(long, default_value_t = 60)]
    timeout_secs: u64,
}

const KEY: &str = "rh_demo_key_0123456789abcdef";

struct Received {
    at: Instant,
    path: String,
    body: Value,
}

pub(super) fn run(args: &DemoArgs) -> anyhow::Result<()> {
    ensure_plugins(&args.plugins_dir)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(demo(args))
}

fn ensure_plugins(dir: &Path) -> anyhow::Result<()> {
    let needed = ["llm_errors.wasm", "redact.wasm", "output_score.wasm"];
    if needed.iter().all(|f| dir.join(f).is_file()) {
        return Ok(());
    }
    let script = Path::new("plugins/build.sh");
    anyhow::ensure!(
        script.is_file(),
        "the example plugins are not in {} and plugins/build.sh is not here; run the demo from the repository root",
        dir.display()
    );
    // The demo's rules use the Rust examples only: building them needs no
    // more than rustup (the other languages' toolchains are not installed).
    println!("Building the Rust example plugins (plugins/build.sh rust) ...");
    let status = std::process::Command::new(script).arg("rust").stdout(std::process::Stdio::null()).status()?;
    anyhow::ensure!(status.success(), "plugins/build.sh rust failed");
    Ok(())
}

async fn demo(args: &DemoArgs) -> anyhow::Result<()> {
    let temp = tempfile::tempdir()?;
    let data_dir = args.data_dir.clone().unwrap_or_else(|| temp.path().join("data"));
    let stop = CancellationToken::new();

    // 1. The receiver: prints each webhook as it arrives.
    let received: Arc<Mutex<Vec<Received>>> = Arc::default();
    let started = Instant::now();
    let sink = received.clone();
    let recv_router = axum::Router::new().route(
        "/{*path}",
        axum::routing::post(move |uri: axum::http::Uri, body: axum::Json<Value>| {
            let sink = sink.clone();
            async move {
                let runs = body["runs"].as_array().map(Vec::len).unwrap_or(0);
                let mut names: Vec<String> = body["runs"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .take(3)
                    .map(|r| format!("{}({})", r["name"].as_str().unwrap_or("?"), r["status"].as_str().unwrap_or("?")))
                    .collect();
                if runs > 3 {
                    names.push("...".into());
                }
                println!(
                    "  [{:>5.1}s] webhook {:<24} {runs} run(s): {}",
                    started.elapsed().as_secs_f64(),
                    uri.path(),
                    names.join(", ")
                );
                sink.lock().unwrap_or_else(PoisonError::into_inner).push(Received {
                    at: Instant::now(),
                    path: uri.path().to_string(),
                    body: body.0,
                });
                "ok"
            }
        }),
    );
    let recv_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let recv = format!("http://{}", recv_listener.local_addr()?);
    let recv_stop = stop.clone();
    tokio::spawn(async move {
        let _ = axum::serve(recv_listener, recv_router).with_graceful_shutdown(recv_stop.cancelled_owned()).await;
    });

    // 2. runhook itself, on the embedded store.
    let config = Config {
        data_dir: data_dir.clone(),
        api_key: Some(KEY.into()),
        delivery: DeliverySettings::loopback_allowed(),
        plugins: PluginSettings { dir: args.plugins_dir.clone(), ..PluginSettings::default() },
        ..Config::default()
    };
    let app = backend::prepare(config).await?;
    let store = app.state().store.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let server = tokio::spawn(app.serve(listener, stop.clone()));
    println!("runhook is serving {base} (data in {}), receiver at {recv}\n", data_dir.display());

    // 3. Rules, through the API.
    let http = reqwest::Client::builder().no_proxy().build()?;
    let plugin = |f: &str| std::fs::canonicalize(args.plugins_dir.join(f)).map(|p| p.display().to_string());
    let rules = [
        json!({"display_name": "errored LLM calls", "filter": r#"and(eq(run_type, "llm"), neq(error, null))"#,
               "webhooks": [{"url": format!("{recv}/errors?secret=demo")}]}),
        json!({"display_name": "rate limits (match plugin)",
               "plugins": {"match": {"path": plugin("llm_errors.wasm")?, "config": {"error_contains": "rate limit"}}},
               "webhooks": [{"url": format!("{recv}/rate-limits")}]}),
        json!({"display_name": "redacted traces (transform)", "filter": "eq(is_root, true)",
               "plugins": {"transform": {"path": plugin("redact.wasm")?, "config": {"keys": ["email", "api_key"]}}},
               "webhooks": [{"url": format!("{recv}/redacted"), "headers": {"x-team": "support"}}]}),
        json!({"display_name": "usefulness evaluator", "filter": "eq(is_root, true)",
               "plugins": {"evaluate": {"path": plugin("output_score.wasm")?,
                                         "config": {"key": "answer_usefulness", "target_chars": 80}}}}),
        json!({"display_name": "unhelpful answers (feedback filter)",
               "filter": r#"has(feedback_key, "answer_usefulness") and feedback_score < 0.5"#,
               "webhooks": [{"url": format!("{recv}/unhelpful")}]}),
    ];
    let mut created = Vec::new();
    for mut rule in rules {
        rule["session_name"] = json!("demo");
        rule["interval_seconds"] = json!(1);
        let resp = http.post(format!("{base}/api/v1/runs/rules")).header("x-api-key", KEY).json(&rule).send().await?;
        let status = resp.status();
        let body: Value = resp.json().await?;
        anyhow::ensure!(status.is_success(), "creating rule {}: {}", rule["display_name"], body);
        println!("rule created: {}", body["display_name"].as_str().unwrap_or("?"));
        created.push(body);
    }

    // 4. Traces: a support bot answering questions, some LLM calls failing.
    println!("\nSending 12 traces (36 runs) to the LangSmith ingest API ...\n");
    let answers = [
        (
            "How do I reset my password?",
            "Open Settings, choose Security, then Reset password; a link arrives by email within a minute.",
            None,
        ),
        ("Can I export my data?", "I don't know.", None),
        ("What does the Pro plan cost?", "", Some("RateLimitError: Rate limit reached for gpt-4o")),
        (
            "Is there a mobile app?",
            "Yes: search for ExampleApp in the App Store or Google Play; sign in with your usual account.",
            None,
        ),
        ("Why was I charged twice?", "Sorry.", None),
        ("How do I add a teammate?", "", Some("APITimeoutError: request timed out")),
        (
            "Where are invoices?",
            "Billing, then Invoices: each month's invoice is there as a PDF you can download or forward.",
            None,
        ),
        ("Can I change my username?", "No.", None),
        ("Do you support SSO?", "", Some("RateLimitError: Rate limit reached for gpt-4o-mini")),
        (
            "How do I delete my account?",
            "Settings, Account, Delete account; we keep nothing after 30 days, as our policy explains.",
            None,
        ),
        (
            "What is the API rate limit?",
            "100 requests per minute per key, with bursts up to 200; see the API docs for headers.",
            None,
        ),
        ("Can I pause my plan?", "I cannot help with that.", None),
    ];
    for (question, answer, error) in answers {
        post_trace(&http, &base, question, answer, error).await?;
    }

    // 5. Wait for every rule to act, then summarise.
    let deadline = Instant::now() + Duration::from_secs(args.timeout_secs);
    let expected = [("/errors", 3), ("/rate-limits", 2), ("/redacted", 12), ("/unhelpful", 6)];
    loop {
        let got = received_runs(&received);
        if expected.iter().all(|(p, n)| got.iter().filter(|(q, _)| q == p).map(|(_, k)| k).sum::<usize>() >= *n) {
            break;
        }
        if Instant::now() > deadline {
            println!("\n(stopped waiting after {} s)", args.timeout_secs);
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await; // let the last deliveries record their outcome

    println!("\n{:<38} {:>6} {:>8} {:>10} {:>7}", "rule", "seen", "matched", "delivered", "failed");
    let mut idle = Vec::new();
    for rule in &created {
        let id = rule["id"].as_str().unwrap_or_default().parse()?;
        let cycles = store.rule_cycles(id, 10_000).await?;
        let seen: i64 = cycles.iter().map(|c| c.candidates).sum();
        let logs = store.rule_logs(id, 10_000, 0).await?;
        let outcome =
            |o: &Option<runhook_core::model::ActionOutcome>, want: &str| o.as_ref().is_some_and(|o| o.outcome == want);
        let delivered =
            logs.iter().filter(|l| outcome(&l.webhooks, "success") || outcome(&l.evaluators, "success")).count();
        let failed = logs.iter().filter(|l| outcome(&l.webhooks, "error") || outcome(&l.evaluators, "error")).count();
        let name = rule["display_name"].as_str().unwrap_or("?");
        println!("{name:<38} {seen:>6} {:>8} {delivered:>10} {failed:>7}", logs.len());
        if delivered == 0 {
            idle.push(name.to_string());
        }
    }
    let redacted = received
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .find(|r| r.path == "/redacted")
        .map(|r| r.body["runs"][0]["inputs"].clone());
    if let Some(inputs) = redacted {
        println!("\nA redacted run's inputs, as the receiver got them: {inputs}");
    }
    let first = received.lock().unwrap_or_else(PoisonError::into_inner).first().map(|r| r.at.duration_since(started));
    if let Some(first) = first {
        println!("First webhook arrived {:.1} s after the demo started.", first.as_secs_f64());
    }
    stop.cancel();
    server.await.context("server task")??;
    anyhow::ensure!(idle.is_empty(), "these rules delivered nothing: {}", idle.join(", "));
    println!(
        "\nTo trace your own app into runhook:\n  cargo run --release -p runhook -- serve --data-dir ./runhook-data\n  \
         export LANGSMITH_ENDPOINT=http://127.0.0.1:1984 LANGSMITH_API_KEY=<printed at first start> LANGSMITH_TRACING=true"
    );
    Ok(())
}

fn received_runs(received: &Arc<Mutex<Vec<Received>>>) -> Vec<(String, usize)> {
    received
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .map(|r| (r.path.clone(), r.body["runs"].as_array().map(Vec::len).unwrap_or(0)))
        .collect()
}

/// One trace: a chain, its retriever, and its LLM call (errored or not).
async fn post_trace(
    http: &reqwest::Client,
    base: &str,
    question: &str,
    answer: &str,
    error: Option<&str>,
) -> anyhow::Result<()> {
    let start = Timestamp::now();
    let (root, retr, llm) = (RunId::new_v7(), RunId::new_v7(), RunId::new_v7());
    let root_dot = dotted_segment(start, root);
    let end = Timestamp::now().to_offset_string();
    let user = json!({"email": "sam@example.com", "plan": "pro"});
    let mut posts = vec![
        json!({"id": root, "trace_id": root, "dotted_order": root_dot, "name": "SupportBot", "run_type": "chain",
               "session_name": "demo", "start_time": start.to_offset_string(), "end_time": end,
               "inputs": {"question": question, "user": user}, "outputs": {"answer": answer},
               "extra": {"metadata": {"user_id": "u-42", "thread_id": "t-7"}}, "tags": ["support"]}),
        json!({"id": retr, "trace_id": root, "parent_run_id": root, "dotted_order": format!("{root_dot}.{}", dotted_segment(start, retr)),
               "name": "SearchDocs", "run_type": "retriever", "session_name": "demo", "start_time": start.to_offset_string(),
               "end_time": end, "inputs": {"query": question}, "outputs": {"documents": [{"page_content": "Help center article"}]}}),
    ];
    let mut llm_run = json!({"id": llm, "trace_id": root, "parent_run_id": root,
        "dotted_order": format!("{root_dot}.{}", dotted_segment(start, llm)), "name": "ChatOpenAI", "run_type": "llm",
        "session_name": "demo", "start_time": start.to_offset_string(), "end_time": end,
        "inputs": {"messages": [{"role": "user", "content": question}]},
        "extra": {"metadata": {"ls_model_name": "gpt-4o"}}});
    match error {
        Some(e) => llm_run["error"] = json!(e),
        None => {
            llm_run["outputs"] = json!({"generations": [[{"text": answer}]], "usage_metadata": {"input_tokens": 40, "output_tokens": 25}})
        }
    }
    posts.push(llm_run);
    let resp =
        http.post(format!("{base}/runs/batch")).header("x-api-key", KEY).json(&json!({"post": posts})).send().await?;
    anyhow::ensure!(resp.status().is_success(), "ingest failed: {}", resp.text().await?);
    Ok(())
}
