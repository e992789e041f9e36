//! `runhook-bench ingest`: how many runs per second the API ingests.
//!
//! Starts the service in this process on a loopback port with a temporary
//! data directory, and sends zstd-compressed multipart batches of 100 small
//! runs (merged post+patch parts, as the SDK sends finished runs) from
//! several concurrent connections. Beside it, in the same run, it measures
//! the raw insert rate of the same store (the same batches handed to
//! `Store::ingest` directly, no HTTP, no parsing), and prints the ratio.

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

    // Baseline: the store alone.
    let raw_dir = tempfile::tempdir()?;
    let raw_app = runhook::backend::prepare(config(raw_dir.path())).await?;
    let store = raw_app.state().store.clone();
    let batches: Vec<IngestBatch> = (0..args.batches).map(|_| raw_batch(args.batch_size)).collect();
    let started = Instant::now();
    for b in batches {
        store.ingest(b).await?;
    }
    let raw = started.elapsed();

    // The API, over loopback.
    let dir = tempfile::tempdir()?;
    let app = runhook::backend::prepare(config(dir.path())).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/runs/multipart", listener.local_addr()?);
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(app.serve(listener, shutdown.clone()));
    let bodies: Vec<Bytes> =
        (0..args.batches).map(|b| multipart_body(b, args.batch_size).map(Bytes::from)).collect::<Result<_, _>>()?;
    let wire_bytes: usize = bodies.iter().map(Bytes::len).sum();
    let client = reqwest::Client::builder().no_proxy().build()?;
    let queue = Arc::new(tokio::sync::Mutex::new(bodies));
    let started = Instant::now();
    let mut senders = tokio::task::JoinSet::new();
    for _ in 0..args.concurrency {
        let (client, queue, url) = (client.clone(), queue.clone(), url.clone());
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
    server.await.context("server task")??;

    let rate = |d: Duration| total as f64 / d.as_secs_f64();
    println!(
        "runhook-bench ingest: {} batches x {} runs, {} connections",
        args.batches, args.batch_size, args.concurrency
    );
    println!("  wire: zstd multipart, {:.1} KB per batch", wire_bytes as f64 / args.batches as f64 / 1024.0);
    println!("  raw store inserts (baseline)   {:>9.0} runs/s  ({:.2} s)", rate(raw), raw.as_secs_f64());
    println!("  HTTP multipart ingest          {:>9.0} runs/s  ({:.2} s)", rate(api), api.as_secs_f64());
    println!("  API / raw store                {:>9.2}", rate(api) / rate(raw));
    println!("  target: >= 10000 runs/s over HTTP");
    Ok(())
}

fn config(dir: &std::path::Path) -> Config {
    Config { data_dir: dir.join("data"), api_key: Some(KEY.into()), ..Config::default() }
}
