//! `runhook-bench alerts`: alert rules over a project under steady ingest:
//! the CPU one evaluation round of every alert costs, and the time from a
//! threshold crossing to the notification's arrival.
//!
//! The whole service runs in this process on a fresh store, with a local
//! receiver. Runs are posted over HTTP at `--rate` per second (ten per
//! request, as the SDK batches) for `--seconds`. A few canary alerts
//! (`error_count` above 0 over one minute, every 10 s, each on runs of its
//! own name) are crossed one after another during the load by one errored
//! run each; a crossing's latency is from that run's request to the
//! arrival of its alert's `triggered` notification. This is measured twice
//! in the same run: with the canaries alone (the baseline), then with
//! `--alerts` more alerts on the project (a mix of run count, error rate,
//! p95 latency and tokens over `--window-minutes`, evaluated every
//! `--every` seconds, never firing). CPU per evaluation round is the
//! process's extra CPU time in the second measurement over the first,
//! divided by the rounds it held; the wall time a round's evaluations took
//! comes from the server's own histogram.

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
pub(crate) struct AlertsBenchArgs {
    /// Alert rules on the project besides the canaries.
    #[arg(long, default_value_t = 1000)]
    alerts: usize,
    /// Runs per second.
    #[arg(long, default_value_t = 1000)]
    rate: usize,
    /// Seconds of load per measurement.
    #[arg(long, default_value_t = 90)]
    seconds: u64,
    /// The alerts' window, in minutes.
    #[arg(long, default_value_t = 1)]
    window_minutes: u32,
    /// Seconds between two evaluations of one alert (10 to 60).
    #[arg(long, default_value_t = 60)]
    every: u32,
    /// Canary alerts crossed during the load (one crossing each).
    #[arg(long, default_value_t = 5)]
    canaries: usize,
    /// A Postgres server (`postgres://user@host/db`): measured on a fresh
    /// database there too.
    #[arg(long)]
    postgres: Option<String>,
}

const KEY: &str = "rh_bench_key_0123456789abcdef";
const PER_REQUEST: usize = 10;
const PROJECT: &str = "alerting";

/// What one measurement found.
struct Found {
    /// Crossing to arrival, per canary that arrived.
    latencies: Vec<Duration>,
    cpu: Option<Duration>,
    evaluations: f64,
    evaluation_seconds: f64,
}

pub(crate) fn run(args: &AlertsBenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!((10..=60).contains(&args.every), "--every must be between 10 and 60");
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        println!(
            "runhook-bench alerts: {} alerts ({}-minute windows, every {} s) over a project at {} runs/s for {} s; \
             {} canaries crossed during the load",
            args.alerts, args.window_minutes, args.every, args.rate, args.seconds, args.canaries
        );
        let mut stores: Vec<(&str, Option<&str>)> = vec![("SQLite", None)];
        if let Some(server) = &args.postgres {
            stores.push(("Postgres", Some(server)));
        }
        for (name, server) in stores {
            println!(" {name}:");
            let (_dir, on) = config(server)?;
            let baseline = measure(args, on, 0).await?;
            println!("{}", line("canaries alone (baseline)", &baseline, None, args));
            let (_dir, on) = config(server)?;
            let loaded = measure(args, on, args.alerts).await?;
            println!("{}", line(&format!("canaries + {} alerts", args.alerts), &loaded, Some(&baseline), args));
        }
        Ok(())
    })
}

/// A configuration on a fresh store, and the directory to keep while it runs.
fn config(server: Option<&str>) -> anyhow::Result<(tempfile::TempDir, Config)> {
    let dir = tempfile::tempdir()?;
    let config = Config {
        data_dir: dir.path().join("data"),
        api_key: Some(KEY.into()),
        delivery: runhook_server::config::DeliverySettings::loopback_allowed(),
        plugins: PluginSettings { dir: PathBuf::from("plugins"), ..PluginSettings::default() },
        ..Config::default()
    };
    match server {
        Some(server) => Ok((dir, crate::postgres::replica(config, &crate::postgres::fresh_database(server)?)?)),
        None => Ok((dir, config)),
    }
}

fn line(label: &str, f: &Found, baseline: Option<&Found>, args: &AlertsBenchArgs) -> String {
    let mut l = f.latencies.clone();
    l.sort_unstable();
    let latency = match (l.first(), l.last()) {
        (Some(_), Some(max)) => format!(
            "crossing -> notification: median {:.1} s, max {:.1} s ({} of {} canaries)",
            l[l.len() / 2].as_secs_f64(),
            max.as_secs_f64(),
            l.len(),
            args.canaries
        ),
        _ => format!("crossing -> notification: none of {} canaries notified", args.canaries),
    };
    let per_round = match baseline {
        Some(b) => {
            // The rounds the extra alerts had during the load, from the
            // evaluations counted (a round's start falls where the period
            // turns, so 90 s of 60-second periods hold one or two).
            let extra_evals = (f.evaluations - b.evaluations).max(0.0);
            let rounds = extra_evals / args.alerts.max(1) as f64;
            let wall = (f.evaluation_seconds - b.evaluation_seconds).max(0.0);
            let cpu = f.cpu.zip(b.cpu).map(|(f, b)| f.saturating_sub(b).as_secs_f64());
            let wall_text = match wall > 0.0 {
                true => format!("{:.2} s wall per round ({:.2} ms per alert)", wall / rounds, wall / extra_evals * 1e3),
                // The rounds' time over the baseline's is what the extra
                // alerts cost; when it is not above it (small runs, or the
                // histogram's sum not moving), there is no figure to print.
                false => "wall n/a (the rounds' time was not above the baseline's)".to_string(),
            };
            match rounds > 0.0 {
                true => format!(
                    "; {rounds:.1} rounds of the {} alerts: {} s CPU and {wall_text}",
                    args.alerts,
                    cpu.map_or("n/a".into(), |c| format!("{:.2}", c / rounds)),
                ),
                false => format!("; no round of the {} alerts completed during the load", args.alerts),
            }
        }
        None => String::new(),
    };
    format!("  {label:<30} {latency}{per_round}")
}

async fn measure(args: &AlertsBenchArgs, config: Config, alerts: usize) -> anyhow::Result<Found> {
    let arrivals: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let stop = CancellationToken::new();
    let recv_url = receiver(arrivals.clone(), stop.clone()).await?;
    let app = runhook::backend::prepare(config).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let server = tokio::spawn(app.serve(listener, stop.clone()));
    let client = reqwest::Client::builder().no_proxy().build()?;
    let post = |path: &str, body: Value| {
        client.post(format!("{base}/api/v1{path}")).header("x-api-key", KEY).json(&body).send()
    };
    for k in 0..args.canaries {
        let alert = json!({"display_name": format!("canary-{k}"), "session_name": PROJECT,
            "metric": {"kind": "error_count"}, "filter": format!(r#"eq(name, "canary-{k}")"#),
            "window_minutes": 1, "critical": 0, "evaluate_every_seconds": 10, "reminder_minutes": 0,
            "webhooks": [{"url": format!("{recv_url}?canary=canary-{k}")}]});
        let created = post("/alerts", alert).await?;
        anyhow::ensure!(created.status().is_success(), "alert creation failed: {}", created.text().await?);
    }
    let metrics = ["run_count", "error_rate", "latency_p95", "total_tokens"];
    for k in 0..alerts {
        let alert = json!({"display_name": format!("alert {k}"), "session_name": PROJECT,
            "metric": {"kind": metrics[k % metrics.len()]}, "window_minutes": args.window_minutes,
            "critical": 1e12, "evaluate_every_seconds": args.every, "webhooks": [{"url": recv_url}]});
        let created = post("/alerts", alert).await?;
        anyhow::ensure!(created.status().is_success(), "alert creation failed: {}", created.text().await?);
    }
    let before = scrape(&client, &base).await?;
    let cpu_before = crate::process::cpu_time();

    // Steady load; a canary is crossed at each of evenly spaced moments.
    let tick = Duration::from_secs_f64(PER_REQUEST as f64 / args.rate as f64);
    let requests = (args.seconds as f64 / tick.as_secs_f64()) as usize;
    let cross_every = requests / (args.canaries + 1);
    let crossed: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let mut ticker = tokio::time::interval(tick);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut inflight = Vec::new();
    for r in 0..requests {
        ticker.tick().await;
        let now = Timestamp::now().to_offset_string();
        let mut runs: Vec<Value> = (0..PER_REQUEST)
            .map(|i| {
                json!({"id": RunId::new_v7().to_string(), "name": format!("step-{}", (r + i) % 7), "run_type": "llm",
                       "session_name": PROJECT, "start_time": now, "end_time": now, "total_tokens": 100 + i})
            })
            .collect();
        let canary = (cross_every > 0 && r > 0 && r % cross_every == 0)
            .then(|| format!("canary-{}", r / cross_every - 1))
            .filter(|_| r / cross_every <= args.canaries);
        if let Some(name) = &canary {
            runs[0]["name"] = json!(name);
            runs[0]["error"] = json!("RateLimitError");
        }
        let (client, url, crossed) = (client.clone(), format!("{base}/runs/batch"), crossed.clone());
        inflight.push(tokio::spawn(async move {
            let at = Instant::now();
            let resp = client.post(url).header("x-api-key", KEY).json(&json!({"post": runs})).send().await?;
            anyhow::ensure!(resp.status().is_success(), "ingest failed: {}", resp.status());
            if let Some(name) = canary {
                crossed.lock().unwrap_or_else(PoisonError::into_inner).insert(name, at);
            }
            Ok(())
        }));
    }
    for task in inflight {
        task.await.context("ingest task")??;
    }
    let cpu = crate::process::cpu_since(cpu_before);
    let after = scrape(&client, &base).await?;
    // Each canary notifies within its period plus a round; the deadline
    // only bounds a failure (and a round longer than it is the finding).
    let deadline = Instant::now() + Duration::from_secs(60);
    let crossed = crossed.lock().unwrap_or_else(PoisonError::into_inner).clone();
    while arrivals.lock().unwrap_or_else(PoisonError::into_inner).len() < crossed.len() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.cancel();
    server.await.context("server task")??;
    let arrived = arrivals.lock().unwrap_or_else(PoisonError::into_inner).clone();
    let latencies =
        crossed.iter().filter_map(|(name, at)| arrived.get(name).map(|a| a.saturating_duration_since(*at))).collect();
    Ok(Found { latencies, cpu, evaluations: after.0 - before.0, evaluation_seconds: after.1 - before.1 })
}

/// The server's evaluation count and the seconds its rounds took, from `/metrics`.
async fn scrape(client: &reqwest::Client, base: &str) -> anyhow::Result<(f64, f64)> {
    let text = client.get(format!("{base}/metrics")).send().await?.text().await?;
    let sum = |name: &str| -> f64 {
        text.lines()
            .filter(|l| l.starts_with(name))
            .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
            .sum()
    };
    Ok((sum("runhook_alert_evaluations_total"), sum("runhook_alert_round_duration_seconds_sum")))
}

/// A receiver recording when each canary's first notification arrives; its URL.
async fn receiver(arrivals: Arc<Mutex<HashMap<String, Instant>>>, stop: CancellationToken) -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/alert", listener.local_addr()?);
    let app = axum::Router::new().route(
        "/alert",
        axum::routing::post(move |query: axum::extract::RawQuery, _body: axum::body::Bytes| {
            let arrivals = arrivals.clone();
            async move {
                if let Some(canary) = query.0.as_deref().and_then(|q| q.strip_prefix("canary=")) {
                    arrivals
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .entry(canary.to_string())
                        .or_insert(Instant::now());
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
