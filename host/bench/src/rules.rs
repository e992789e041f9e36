//! `runhook-bench rules`: rule-cycle throughput and ingest-to-receiver latency.
//!
//! Throughput: 100,000 finished runs (a fifth of them errored LLM calls)
//! are written to a fresh store, then one cycle of a rule with a filter and
//! the Rust `llm_errors` match plugin is timed over the whole window: runs
//! evaluated per second, end to end (read, filter, plugin, render, outbox
//! commit). Beside it, the same window with the filter alone, no plugin.
//!
//! Latency: the whole service runs in this process with a rule at
//! `interval_seconds = 1` and a local receiver; runs are posted over HTTP
//! one by one, and the time from each post's acknowledgement to the arrival
//! of the webhook carrying it is recorded (p50, p99).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use runhook_core::model::{
    PluginRef, PluginSource, RuleId, RulePlugins, RuleSpec, RunId, RunType, RunWrite, SessionId, Timestamp,
    WebhookTarget,
};
use runhook_server::config::{Config, PluginSettings};
use runhook_server::rules::pipeline::{Engine, Prepared, run_cycle};
use runhook_store::IngestBatch;

#[derive(Debug, Args)]
pub(crate) struct RulesBenchArgs {
    /// Runs in the throughput window.
    #[arg(long, default_value_t = 100_000)]
    runs: usize,
    /// Runs posted for the latency measurement.
    #[arg(long, default_value_t = 200)]
    latency_runs: usize,
    /// Directory holding the built plugins.
    #[arg(long, default_value = "plugins/rust/target/wasm32-wasip2/release")]
    plugins_dir: PathBuf,
    /// A Postgres server (`postgres://user@host/db`): the cycle throughput
    /// is measured on a fresh database there too.
    #[arg(long)]
    postgres: Option<String>,
}

const KEY: &str = "rh_bench_key_0123456789abcdef";

fn config(dir: &std::path::Path, plugins: &std::path::Path) -> Config {
    Config {
        data_dir: dir.join("data"),
        api_key: Some(KEY.into()),
        delivery: runhook_server::config::DeliverySettings::loopback_allowed(),
        plugins: PluginSettings { dir: plugins.to_path_buf(), ..PluginSettings::default() },
        ..Config::default()
    }
}

fn run_write(i: usize, session: &str) -> RunWrite {
    let id = RunId::new_v7();
    let errored = i.is_multiple_of(5);
    RunWrite {
        id: Some(id),
        name: Some(if errored { "ChatOpenAI".into() } else { "Retriever".into() }),
        run_type: Some(if errored { RunType::Llm } else { RunType::Retriever }),
        session_name: Some(session.into()),
        start_time: Some(Timestamp::now()),
        end_time: Some(Timestamp::now()),
        error: errored.then(|| "RateLimitError: slow down".into()),
        inputs: Some(json!({"messages": [{"role": "user", "content": format!("question {i}")}]})),
        outputs: Some(json!({"output": format!("answer {i}")})),
        extra: Some(json!({"metadata": {"i": i, "env": "bench"}})),
        ..RunWrite::default()
    }
}

pub(crate) fn run(args: &RulesBenchArgs) -> anyhow::Result<()> {
    let plugin = args.plugins_dir.join("llm_errors.wasm");
    anyhow::ensure!(plugin.is_file(), "{} not found; build the plugins first (plugins/build.sh)", plugin.display());
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let dir = tempfile::tempdir()?;
        throughput(args, &plugin, "SQLite", config(dir.path(), &args.plugins_dir)).await?;
        if let Some(server) = &args.postgres {
            let pg = crate::postgres::replica(
                config(dir.path(), &args.plugins_dir),
                &crate::postgres::fresh_database(server)?,
            )?;
            throughput(args, &plugin, "Postgres", pg).await?;
        }
        latency(args).await
    })
}

fn spec(session: SessionId, filter: &str, plugin: Option<&std::path::Path>, webhook: &str) -> RuleSpec {
    let webhooks = vec![WebhookTarget { id: None, url: webhook.into(), headers: None }];
    RuleSpec {
        filter: Some(filter.into()),
        plugins: RulePlugins {
            matcher: plugin.map(|p| PluginRef::new(PluginSource::Path(p.display().to_string()))),
            ..RulePlugins::default()
        },
        interval_seconds: 1,
        ..RuleSpec::new("bench", session, webhooks)
    }
}

async fn throughput(
    args: &RulesBenchArgs,
    plugin: &std::path::Path,
    store_name: &str,
    config: Config,
) -> anyhow::Result<()> {
    let app = runhook::backend::prepare(config).await?;
    let store = app.state().store.clone();
    let plugins = app.state().plugins.clone();
    // The project must exist before the rules do.
    store.ingest(IngestBatch { posts: vec![run_write(1, "bench")], ..IngestBatch::default() }).await?;
    let session = store
        .list_sessions(&runhook_store::SessionQuery { name: Some("bench".into()), limit: 1, ..Default::default() })
        .await?;
    let session = session.first().context("bench project")?.id;
    let filter = r#"and(eq(run_type, "llm"), neq(error, null))"#;
    let with_plugin =
        store.create_rule(RuleId::new_v4(), &spec(session, filter, Some(plugin), "http://127.0.0.1:9/")).await?;
    let filter_only = store.create_rule(RuleId::new_v4(), &spec(session, filter, None, "http://127.0.0.1:9/")).await?;
    let started = Instant::now();
    for chunk in (0..args.runs).collect::<Vec<_>>().chunks(1000) {
        let posts = chunk.iter().map(|i| run_write(*i, "bench")).collect();
        store.ingest(IngestBatch { posts, ..IngestBatch::default() }).await?;
    }
    let ingest = started.elapsed();
    let mut results = Vec::new();
    for (name, rule) in [("filter + Rust match plugin", &with_plugin), ("filter only (baseline)", &filter_only)] {
        let engine = Engine::new(store.clone(), plugins.clone());
        let prepared = Prepared::new(rule.clone())?;
        let started = Instant::now();
        let report = run_cycle(&engine, &prepared, None, 0).await?;
        let took = started.elapsed();
        results.push((name, report, took));
    }
    println!(
        "runhook-bench rules ({store_name}): one cycle over a window of {} runs (1 in 5 an errored LLM call)",
        args.runs
    );
    println!("  ingest (store, 1000 per batch)      {:>10.0} runs/s", args.runs as f64 / ingest.as_secs_f64());
    for (name, report, took) in &results {
        println!(
            "  {name:<34} {:>10.0} runs/s  ({} matched, {} deliveries queued, {:.2} s)",
            report.candidates as f64 / took.as_secs_f64(),
            report.actioned,
            report.deliveries,
            took.as_secs_f64()
        );
    }
    if let [(_, _, a), (_, _, b)] = results.as_slice() {
        println!("  plugin cycle / filter-only cycle     {:>10.2}x time", a.as_secs_f64() / b.as_secs_f64());
    }
    Ok(())
}

async fn latency(args: &RulesBenchArgs) -> anyhow::Result<()> {
    // The receiver: records when each run arrives.
    let arrivals: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let recv_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let recv_url = format!("http://{}/hook", recv_listener.local_addr()?);
    let sink = arrivals.clone();
    let receiver = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: axum::Json<serde_json::Value>| {
            let sink = sink.clone();
            async move {
                let now = Instant::now();
                let mut map = sink.lock().unwrap_or_else(PoisonError::into_inner);
                for run in body["runs"].as_array().into_iter().flatten() {
                    if let Some(id) = run["id"].as_str() {
                        map.entry(id.to_string()).or_insert(now);
                    }
                }
                "ok"
            }
        }),
    );
    let stop = CancellationToken::new();
    let recv_stop = stop.clone();
    tokio::spawn(async move {
        let _ = axum::serve(recv_listener, receiver).with_graceful_shutdown(recv_stop.cancelled_owned()).await;
    });

    let dir = tempfile::tempdir()?;
    let app = runhook::backend::prepare(config(dir.path(), &args.plugins_dir)).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let server = tokio::spawn(app.serve(listener, stop.clone()));
    let client = reqwest::Client::builder().no_proxy().build()?;
    let created = client
        .post(format!("{base}/api/v1/runs/rules"))
        .header("x-api-key", KEY)
        .json(&json!({"display_name": "latency", "session_name": "latency", "interval_seconds": 1,
                      "webhooks": [{"url": recv_url}]}))
        .send()
        .await?;
    anyhow::ensure!(created.status().is_success(), "rule creation failed: {}", created.text().await?);
    let mut acked: HashMap<String, Instant> = HashMap::new();
    for i in 0..args.latency_runs {
        let w = run_write(i, "latency");
        let id = w.id.map(|i| i.to_string()).unwrap_or_default();
        let body = json!({"id": id, "name": "step", "run_type": "tool", "session_name": "latency",
                          "start_time": Timestamp::now().to_offset_string(), "end_time": Timestamp::now().to_offset_string()});
        let resp = client.post(format!("{base}/runs")).header("x-api-key", KEY).json(&body).send().await?;
        anyhow::ensure!(resp.status().is_success(), "ingest failed: {}", resp.status());
        acked.insert(id, Instant::now());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while arrivals.lock().unwrap_or_else(PoisonError::into_inner).len() < acked.len() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.cancel();
    server.await.context("server task")??;
    let arrived = arrivals.lock().unwrap_or_else(PoisonError::into_inner).clone();
    let mut lat: Vec<Duration> =
        acked.iter().filter_map(|(id, at)| arrived.get(id).map(|a| a.duration_since(*at))).collect();
    lat.sort_unstable();
    anyhow::ensure!(!lat.is_empty(), "no webhook arrived");
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
    println!(
        "  ingest -> receiver latency, interval_seconds = 1 ({} of {} runs arrived): p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        lat.len(),
        acked.len(),
        pct(0.5).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
        lat[lat.len() - 1].as_secs_f64() * 1e3
    );
    Ok(())
}
