//! `runhook-bench ingest`: how many runs per second the API ingests.
//!
//! Starts the service in this process on a loopback port with a temporary
//! data directory, and sends zstd-compressed multipart batches of 100 small
//! runs (merged post+patch parts, as the SDK sends finished runs) from
//! several concurrent connections. Beside it, in the same run, it measures
//! the raw insert rate of the same store (the same batches handed to
//! `Store::ingest` directly, no HTTP, no parsing), and prints the ratio.
//!
//! With `--postgres URL`, the same is measured on a fresh Postgres database
//! with one replica, and with three replicas (three services in this
//! process on one database, the connections spread over them), printed
//! beside the embedded store's figures.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use clap::Args;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use runhook_core::model::{RunId, RunType, RunWrite, Timestamp};
use runhook_server::config::Config;
use runhook_store::IngestBatch;

#[derive(Debug, Args)]
pub(crate) struct IngestBenchArgs {
    /// Batches to send (each of `--batch-size` runs).
    #[arg(long, default_value_t = 300)]
    batches: usize,
    /// Runs per batch.
    #[arg(long, default_value_t = 100)]
    batch_size: usize,
    /// Concurrent connections.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// A Postgres server (`postgres://user@host/db`) to measure on too.
    #[arg(long)]
    postgres: Option<String>,
}

const KEY: &str = "rh_bench_key_0123456789abcdef";

/// The main part of a finished run, without its large fields.
fn run_json(id: RunId) -> serde_json::Value {
    let start = Timestamp::now();
    json!({
        "id": id, "trace_id": id, "dotted_order": runhook_core::model::run::dotted_segment(start, id),
        "name": "ChatOpenAI", "run_type": "llm", "session_name": "bench",
        "start_time": start.to_offset_string(), "end_time": Timestamp::now().to_offset_string(),
        "tags": ["bench"],
    })
}

fn multipart_body(batch: usize, size: usize) -> anyhow::Result<Vec<u8>> {
    let boundary = "runhookbenchboundary";
    let mut body = Vec::new();
    for i in 0..size {
        let id = RunId::new_v7();
        let run = run_json(id);
        let inputs = json!({"messages": [{"role": "user", "content": format!("question {i}")}]});
        let outputs = json!({"output": format!("answer {i}")});
        for (name, value) in [
            (format!("post.{id}"), run),
            (format!("post.{id}.inputs"), inputs),
            (format!("post.{id}.outputs"), outputs),
            (format!("post.{id}.extra"), json!({"metadata": {"i": batch * size + i}})),
        ] {
            let data = serde_json::to_vec(&value)?;
            body.extend_from_slice(
                format!(
                    "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                    data.len()
                )
                .as_bytes(),
            );
            body.extend_from_slice(&data);
            body.extend_from_slice(b"\r\n");
        }
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    Ok(zstd::encode_all(&body[..], 1)?)
}

fn raw_batch(size: usize) -> IngestBatch {
    let posts = (0..size)
        .map(|i| {
            let id = RunId::new_v7();
            let start = Timestamp::now();
            RunWrite {
                id: Some(id),
                trace_id: Some(id),
                dotted_order: Some(runhook_core::model::run::dotted_segment(start, id)),
                name: Some("ChatOpenAI".into()),
                run_type: Some(RunType::Llm),
                session_name: Some("bench".into()),
                start_time: Some(start),
                end_time: Some(Timestamp::now()),
                tags: Some(vec!["bench".into()]),
                inputs: Some(json!({"messages": [{"role": "user", "content": format!("question {i}")}]})),
                outputs: Some(json!({"output": format!("answer {i}")})),
                extra: Some(json!({"metadata": {"i": i}})),
                ..RunWrite::default()
            }
        })
        .collect();
    IngestBatch { posts, patch_creates: true, ..IngestBatch::default() }
}

pub(crate) fn run(args: &IngestBenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.batches > 0 && args.batch_size > 0 && args.concurrency > 0, "all counts must be positive");
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(bench(args))
}

async fn bench(args: &IngestBenchArgs) -> anyhow::Result<()> {
    let total = args.batches * args.batch_size;
    let dir = tempfile::tempdir()?;
    let sqlite = |name: &str| config(&dir.path().join(name));
    let mut rows = vec![("SQLite", measure(args, vec![sqlite("raw")], vec![sqlite("api")]).await?)];
    if let Some(server) = &args.postgres {
        let one = |name: &str| -> anyhow::Result<Config> {
            crate::postgres::replica(sqlite(name), &crate::postgres::fresh_database(server)?)
        };
        rows.push(("Postgres, 1 replica", measure(args, vec![one("pg-raw")?], vec![one("pg-api")?]).await?));
        let shared = crate::postgres::fresh_database(server)?;
        let three = (0..3)
            .map(|i| crate::postgres::replica(sqlite(&format!("pg-{i}")), &shared))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let raw = crate::postgres::replica(sqlite("pg-3-raw"), &crate::postgres::fresh_database(server)?)?;
        rows.push(("Postgres, 3 replicas", measure(args, vec![raw], three).await?));
    }

    let rate = |d: Duration| total as f64 / d.as_secs_f64();
    println!(
        "runhook-bench ingest: {} batches x {} runs, {} connections",
        args.batches, args.batch_size, args.concurrency
    );
    println!("  wire: zstd multipart, {:.1} KB per batch", rows[0].1.wire_bytes as f64 / args.batches as f64 / 1024.0);
    println!("  {:<22} {:>16} {:>16} {:>10}", "store", "raw store runs/s", "HTTP runs/s", "HTTP/raw");
    for (name, m) in &rows {
        println!("  {:<22} {:>16.0} {:>16.0} {:>10.2}", name, rate(m.raw), rate(m.api), rate(m.api) / rate(m.raw));
    }
    println!("  target: >= 10000 runs/s over HTTP");
    if rows.len() > 1 {
        println!("  (the 3 replicas share this machine's cores with each other and with Postgres)");
    }
    Ok(())
}

/// One measurement: the baseline and the API.
struct Measured {
    raw: Duration,
    api: Duration,
    wire_bytes: usize,
}

/// The raw store rate on the first of `raw` (one service), then the HTTP
/// rate through `replicas` (services started in this process, connections
/// spread over them).
async fn measure(args: &IngestBenchArgs, raw: Vec<Config>, replicas: Vec<Config>) -> anyhow::Result<Measured> {
    let mut raw_apps = Vec::new();
    for c in raw {
        raw_apps.push(runhook::backend::prepare(c).await?);
    }
    let store = raw_apps[0].state().store.clone();
    let batches: Vec<IngestBatch> = (0..args.batches).map(|_| raw_batch(args.batch_size)).collect();
    let started = Instant::now();
    for b in batches {
        store.ingest(b).await?;
    }
    let raw = started.elapsed();
    drop(raw_apps);

    let shutdown = CancellationToken::new();
    let (mut urls, mut servers) = (Vec::new(), Vec::new());
    for c in replicas {
        let app = runhook::backend::prepare(c).await?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        urls.push(format!("http://{}/runs/multipart", listener.local_addr()?));
        servers.push(tokio::spawn(app.serve(listener, shutdown.clone())));
    }
    let bodies: Vec<Bytes> =
        (0..args.batches).map(|b| multipart_body(b, args.batch_size).map(Bytes::from)).collect::<Result<_, _>>()?;
    let wire_bytes: usize = bodies.iter().map(Bytes::len).sum();
    let client = reqwest::Client::builder().no_proxy().build()?;
    let queue = Arc::new(tokio::sync::Mutex::new(bodies));
    let started = Instant::now();
    let mut senders = tokio::task::JoinSet::new();
    for i in 0..args.concurrency {
        let (client, queue, url) = (client.clone(), queue.clone(), urls[i % urls.len()].clone());
        senders.spawn(async move {
            loop {
                let Some(body) = queue.lock().await.pop() else {
                    return Ok::<_, anyhow::Error>(());
                };
                let resp = client
                    .post(&url)
                    .header("x-api-key", KEY)
                    .header("content-type", "multipart/form-data; boundary=runhookbenchboundary")
                    .header("content-encoding", "zstd")
                    .body(body)
                    .send()
                    .await?;
                anyhow::ensure!(resp.status().is_success(), "ingest failed: {}", resp.status());
            }
        });
    }
    while let Some(done) = senders.join_next().await {
        done.context("sender task")??;
    }
    let api = started.elapsed();
    shutdown.cancel();
    for server in servers {
        server.await.context("server task")??;
    }
    Ok(Measured { raw, api, wire_bytes })
}

fn config(dir: &std::path::Path) -> Config {
    Config { data_dir: dir.to_path_buf(), api_key: Some(KEY.into()), ..Config::default() }
}
