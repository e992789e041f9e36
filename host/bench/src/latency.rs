//! `runhook-bench latency`: ingest-to-receiver latency under a steady load,
//! with wake-ups on ingest beside the same load with them off.
//!
//! The whole service runs in this process on a fresh store, with ten rules
//! (each selecting a tenth of the runs by name) and a local receiver. Runs
//! are posted over HTTP at a steady rate (ten per request, as the SDK
//! batches) for the given time; each run's latency is from the moment its
//! request was sent to the arrival of the webhook carrying it. The same
//! load is then run on another fresh store with `wake_on_ingest: false`
//! (every rule polls each `interval_seconds = 1`, runhook before wake-ups
//! and the closest a LangSmith rule comes). With `--postgres`, both are
//! measured on Postgres too.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use runhook_core::model::{RunId, Timestamp};
use runhook_server::config::{Config, PluginSettings};

#[derive(Debug, Args)]
pub(crate) struct LatencyBenchArgs {
    /// Seconds of load per measurement.
    #[arg(long, default_value_t = 30)]
    seconds: u64,
    /// Runs per second.
    #[arg(long, default_value_t = 1000)]
    rate: usize,
    /// Rules on the project.
    #[arg(long, default_value_t = 10)]
    rules: usize,
    /// The rules' `batch_ms` (runhook's default when not given).
    #[arg(long)]
    batch_ms: Option<u64>,
    /// A Postgres server (`postgres://user@host/db`): measured on a fresh
    /// database there too.
    #[arg(long)]
    postgres: Option<String>,
}

const KEY: &str = "rh_bench_key_0123456789abcdef";
const PER_REQUEST: usize = 10;

/// What one measurement found.
struct Latencies {
    sorted: Vec<Duration>,
    sent: usize,
}

impl Latencies {
    fn line(&self, label: &str) -> String {
        let l = &self.sorted;
        if l.is_empty() {
            return format!("  {label:<34} no run arrived");
        }
        let pct = |p: f64| l[((l.len() as f64 * p) as usize).min(l.len() - 1)].as_secs_f64() * 1e3;
        format!(
            "  {label:<34} p50 {:>6.0} ms   p99 {:>6.0} ms   max {:>6.0} ms   ({} of {} runs arrived)",
            pct(0.5),
            pct(0.99),
            l[l.len() - 1].as_secs_f64() * 1e3,
            l.len(),
            self.sent
        )
    }
}

pub(crate) fn run(args: &LatencyBenchArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        println!(
            "runhook-bench latency: {} runs/s over HTTP ({PER_REQUEST} per request) for {} s, {} rules, local receiver",
            args.rate, args.seconds, args.rules
        );
        let mut stores: Vec<(&str, Option<&str>)> = vec![("SQLite", None)];
        if let Some(server) = &args.postgres {
            stores.push(("Postgres", Some(server)));
        }
        for (name, server) in stores {
            println!(" {name}:");
            for wake in [true, false] {
                let dir = tempfile::tempdir()?;
                let mut config = Config {
                    data_dir: dir.path().join("data"),
                    api_key: Some(KEY.into()),
                    delivery: runhook_server::config::DeliverySettings::loopback_allowed(),
                    plugins: PluginSettings { dir: PathBuf::from("plugins"), ..PluginSettings::default() },
                    ..Config::default()
                };
                if let Some(server) = server {
                    config = crate::postgres::replica(config, &crate::postgres::fresh_database(server)?)?;
                }
                let found = measure(args, config, wake).await?;
                let label = if wake {
                    format!("wake-ups on (batch_ms {})", args.batch_ms.unwrap_or(100))
                } else {
                    "wake-ups off (polling every 1 s)".to_string()
                };
                println!("{}", found.line(&label));
            }
        }
        Ok(())
    })
}

async fn measure(args: &LatencyBenchArgs, config: Config, wake: bool) -> anyhow::Result<Latencies> {
    let arrivals: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let stop = CancellationToken::new();
    let recv_url = receiver(arrivals.clone(), stop.clone()).await?;

    let app = runhook::backend::prepare(config).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let server = tokio::spawn(app.serve(listener, stop.clone()));
    let client = reqwest::Client::builder().no_proxy().build()?;
    for k in 0..args.rules {
        let mut rule = json!({"display_name": format!("latency {k}"), "session_name": "latency",
            "filter": format!(r#"eq(name, "step-{k}")"#), "interval_seconds": 1, "wake_on_ingest": wake,
            "webhooks": [{"url": recv_url}]});
        if let Some(batch) = args.batch_ms {
            rule["batch_ms"] = json!(batch);
        }
        let created =
            client.post(format!("{base}/api/v1/runs/rules")).header("x-api-key", KEY).json(&rule).send().await?;
        anyhow::ensure!(created.status().is_success(), "rule creation failed: {}", created.text().await?);
    }

    // Steady load: a request of PER_REQUEST runs every tick.
    let tick = Duration::from_secs_f64(PER_REQUEST as f64 / args.rate as f64);
    let requests = (args.seconds as f64 / tick.as_secs_f64()) as usize;
    let sent: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let mut ticker = tokio::time::interval(tick);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut inflight = Vec::new();
    for r in 0..requests {
        ticker.tick().await;
        let now = Timestamp::now().to_offset_string();
        let runs: Vec<Value> = (0..PER_REQUEST)
            .map(|i| {
                json!({"id": RunId::new_v7().to_string(), "name": format!("step-{}", (r * PER_REQUEST + i) % args.rules),
                       "run_type": "tool", "session_name": "latency", "start_time": now, "end_time": now})
            })
            .collect();
        let (client, url, sent) = (client.clone(), format!("{base}/runs/batch"), sent.clone());
        inflight.push(tokio::spawn(async move {
            let at = Instant::now();
            {
                let mut sent = sent.lock().unwrap_or_else(PoisonError::into_inner);
                for run in &runs {
                    sent.insert(run["id"].as_str().unwrap_or_default().to_string(), at);
                }
            }
            let resp = client.post(url).header("x-api-key", KEY).json(&json!({"post": runs})).send().await?;
            anyhow::ensure!(resp.status().is_success(), "ingest failed: {}", resp.status());
            Ok(())
        }));
    }
    for task in inflight {
        task.await.context("ingest task")??;
    }
    let total = sent.lock().unwrap_or_else(PoisonError::into_inner).len();
    // Every run arrives within a few polls; the deadline only bounds a failure.
    let deadline = Instant::now() + Duration::from_secs(60);
    while arrivals.lock().unwrap_or_else(PoisonError::into_inner).len() < total && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.cancel();
    server.await.context("server task")??;
    let arrived = arrivals.lock().unwrap_or_else(PoisonError::into_inner).clone();
    let sent = sent.lock().unwrap_or_else(PoisonError::into_inner).clone();
    let mut sorted: Vec<Duration> =
        sent.iter().filter_map(|(id, at)| arrived.get(id).map(|a| a.saturating_duration_since(*at))).collect();
    sorted.sort_unstable();
    Ok(Latencies { sorted, sent: total })
}

/// A receiver recording when each run first arrives; its URL.
async fn receiver(arrivals: Arc<Mutex<HashMap<String, Instant>>>, stop: CancellationToken) -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/hook", listener.local_addr()?);
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: axum::Json<Value>| {
            let arrivals = arrivals.clone();
            async move {
                let now = Instant::now();
                let mut map = arrivals.lock().unwrap_or_else(PoisonError::into_inner);
                for run in body["runs"].as_array().into_iter().flatten() {
                    if let Some(id) = run["id"].as_str() {
                        map.entry(id.to_string()).or_insert(now);
                    }
                }
                "ok"
            }
        }),
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).with_graceful_shutdown(stop.cancelled_owned()).await;
    });
    Ok(url)
}
