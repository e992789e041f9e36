//! A soak: steady ingest, rule cycles and deliveries for a long time, with
//! bad requests mixed in, printing the process's memory, open files and
//! request latencies every minute, so that a leak shows as a slope.
//!
//! The service runs in this process (as `runhook serve` does, on the
//! embedded store); the load comes from one client task. Every minute it
//! prints resident memory and open descriptors (from `/proc/self`), ingest
//! and query latency percentiles, runs acknowledged, webhooks received, bad
//! requests answered with a 4xx and anything answered with a 5xx. The
//! baseline is the first minute: the last line gives the slope of memory
//! and descriptors over the run, fitted by least squares.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::process::rss_mib;

use runhook_core::model::{RunId, Timestamp};
use runhook_server::config::Config;

#[derive(Debug, Args)]
pub(crate) struct SoakBenchArgs {
    /// How long to run.
    #[arg(long, default_value_t = 30)]
    minutes: u64,
    /// Runs ingested per second (in batches of 10).
    #[arg(long, default_value_t = 200)]
    rate: u64,
}

const KEY: &str = "rh_bench_key_0123456789abcdef";

pub(crate) fn run(args: &SoakBenchArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(soak(args))
}

/// What the load saw in one minute.
#[derive(Default)]
struct Minute {
    ingest_ms: Vec<f64>,
    query_ms: Vec<f64>,
    acked: u64,
    refused: u64,
    failed: u64,
}

async fn soak(args: &SoakBenchArgs) -> anyhow::Result<()> {
    let received = Arc::new(AtomicU64::new(0));
    let sink = received.clone();
    let receiver = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: axum::Json<Value>| {
            let sink = sink.clone();
            async move {
                sink.fetch_add(body["runs"].as_array().map_or(0, Vec::len) as u64, Ordering::Relaxed);
                "ok"
            }
        }),
    );
    let recv_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let recv_url = format!("http://{}/hook", recv_listener.local_addr()?);
    let stop = CancellationToken::new();
    let recv_stop = stop.clone();
    tokio::spawn(async move {
        let _ = axum::serve(recv_listener, receiver).with_graceful_shutdown(recv_stop.cancelled_owned()).await;
    });

    let dir = tempfile::tempdir()?;
    let config = Config {
        data_dir: dir.path().join("data"),
        api_key: Some(KEY.into()),
        delivery: runhook_server::config::DeliverySettings::loopback_allowed(),
        ..Config::default()
    };
    let app = runhook::backend::prepare(config).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let server = tokio::spawn(app.serve(listener, stop.clone()));
    let client = reqwest::Client::builder().no_proxy().build()?;
    for (name, filter) in
        [("errors", "eq(status, \"error\")"), ("slow llm", "and(eq(run_type, \"llm\"), gt(latency, 1))")]
    {
        let rule = json!({"display_name": name, "session_name": "soak", "filter": filter, "interval_seconds": 1,
                          "webhooks": [{"url": recv_url}]});
        let created = client.post(format!("{base}/runs/rules")).header("x-api-key", KEY).json(&rule).send().await?;
        anyhow::ensure!(created.status().is_success(), "rule creation failed: {}", created.text().await?);
    }

    println!(
        "soak: {} minutes, {} runs/s in batches of 10, bad requests every 20th, a query every second",
        args.minutes, args.rate
    );
    println!(
        "{:>4} {:>9} {:>6} {:>11} {:>11} {:>11} {:>11} {:>8} {:>8} {:>5} {:>4}",
        "min", "RSS MiB", "files", "ingest p50", "ingest p99", "query p50", "query p99", "acked", "hooks", "4xx", "5xx"
    );
    let tick = Duration::from_millis(1000 * 10 / args.rate.max(1));
    let start = Instant::now();
    let mut samples: Vec<(f64, f64, f64)> = Vec::new();
    let mut hooks_before = 0;
    let mut n: u64 = 0;
    for minute in 1..=args.minutes {
        let mut m = Minute::default();
        let end = start + Duration::from_secs(60 * minute);
        let mut next_query = Instant::now();
        while Instant::now() < end {
            n += 1;
            let (body, bad) = if n.is_multiple_of(20) { (bad_request(n), true) } else { (batch(n), false) };
            let t = Instant::now();
            let resp = client.post(format!("{base}/runs/batch")).header("x-api-key", KEY).body(body).send().await;
            let status = resp.map(|r| r.status().as_u16()).unwrap_or(599);
            match status {
                200..=299 if !bad => {
                    m.ingest_ms.push(t.elapsed().as_secs_f64() * 1e3);
                    m.acked += 10;
                }
                400..=499 if bad => m.refused += 1,
                _ => m.failed += 1,
            }
            if Instant::now() >= next_query {
                next_query += Duration::from_secs(1);
                let t = Instant::now();
                let q = json!({"session": [], "filter": "search('timeout')", "limit": 20, "select": ["id", "name", "error"]});
                let resp = client.post(format!("{base}/runs/query")).header("x-api-key", KEY).json(&q).send().await;
                match resp.map(|r| r.status().is_success()) {
                    Ok(true) => m.query_ms.push(t.elapsed().as_secs_f64() * 1e3),
                    _ => m.failed += 1,
                }
            }
            tokio::time::sleep(tick.saturating_sub(t.elapsed())).await;
        }
        let (rss, files) = (rss_mib()?, open_files()?);
        let hooks = received.load(Ordering::Relaxed);
        println!(
            "{minute:>4} {rss:>9.1} {files:>6} {:>9.1}ms {:>9.1}ms {:>9.1}ms {:>9.1}ms {:>8} {:>8} {:>5} {:>4}",
            pct(&mut m.ingest_ms, 0.5),
            pct(&mut m.ingest_ms, 0.99),
            pct(&mut m.query_ms, 0.5),
            pct(&mut m.query_ms, 0.99),
            m.acked,
            hooks - hooks_before,
            m.refused,
            m.failed
        );
        hooks_before = hooks;
        samples.push((minute as f64, rss, files as f64));
    }
    stop.cancel();
    server.await.context("server task")??;
    if let (Some(first), true) = (samples.first(), samples.len() >= 2) {
        let rss_slope = slope(samples.iter().map(|s| (s.0, s.1)));
        let files_slope = slope(samples.iter().map(|s| (s.0, s.2)));
        println!(
            "baseline (minute 1): RSS {:.1} MiB, {} files; slope over {} minutes: RSS {rss_slope:+.2} MiB/min, files {files_slope:+.2}/min",
            first.1,
            first.2,
            samples.len()
        );
    }
    Ok(())
}

/// Ten finished runs in project `soak`: every seventh errored, every fifth slow.
fn batch(n: u64) -> Vec<u8> {
    let now = Timestamp::now();
    let posts: Vec<Value> = (0..10)
        .map(|i| {
            let k = n * 10 + i;
            let mut run = json!({
                "id": RunId::new_v7().to_string(), "name": "ChatOpenAI", "run_type": if k.is_multiple_of(2) { "llm" } else { "chain" },
                "session_name": "soak", "start_time": now.to_offset_string(),
                "end_time": Timestamp::from_datetime(now.as_datetime() + chrono::Duration::milliseconds(if k.is_multiple_of(5) { 1500 } else { 200 })).to_offset_string(),
                "inputs": {"messages": [{"role": "user", "content": format!("question {k}")}]},
                "outputs": {"generations": [{"text": format!("answer {k}")}]},
                "extra": {"metadata": {"thread_id": format!("t{}", k % 100)}},
            });
            if k.is_multiple_of(7) {
                run["error"] = json!("upstream timeout");
            }
            run
        })
        .collect();
    serde_json::to_vec(&json!({"post": posts})).unwrap_or_default()
}

/// A request the server must refuse with a 4xx, one of several kinds.
fn bad_request(n: u64) -> Vec<u8> {
    match (n / 20) % 4 {
        0 => b"{\"post\": [".to_vec(),
        1 => br#"{"post": [{"id": "not-a-uuid", "name": "x"}]}"#.to_vec(),
        2 => br#"{"post": []} trailing"#.to_vec(),
        _ => br#"{"pots": []}"#.to_vec(),
    }
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_unstable_by(f64::total_cmp);
    v[((v.len() as f64 * p) as usize).min(v.len() - 1)]
}

fn open_files() -> anyhow::Result<usize> {
    Ok(std::fs::read_dir("/proc/self/fd").context("read /proc/self/fd")?.count())
}

/// Least-squares slope of y over x.
fn slope(points: impl Iterator<Item = (f64, f64)> + Clone) -> f64 {
    let n = points.clone().count() as f64;
    let (sx, sy) = points.clone().fold((0.0, 0.0), |(a, b), (x, y)| (a + x, b + y));
    let (mx, my) = (sx / n, sy / n);
    let (num, den) = points.fold((0.0, 0.0), |(a, b), (x, y)| (a + (x - mx) * (y - my), b + (x - mx) * (x - mx)));
    if den == 0.0 { 0.0 } else { num / den }
}
