//! `runhook-bench rules`: rule-cycle throughput.
//!
//! 100,000 finished runs (a fifth of them errored LLM calls) are written
//! to a fresh store, then one cycle of a rule with a filter and the Rust
//! `llm_errors` match plugin is timed over the whole window: runs evaluated
//! per second, end to end (read, filter, plugin, render, outbox commit).
//! Beside it, the same window with the filter alone, no plugin, and the
//! filter's own rate over the same runs in memory: what the cycle costs
//! beyond evaluating the filter. With `--rules N`, see `many_rules`.
//! Ingest-to-receiver latency is `runhook-bench latency`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use serde_json::json;

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
    pub(crate) runs: usize,
    /// Rules on the project: more than one measures many rules sharing
    /// the window (see `many_rules`) instead.
    #[arg(long, default_value_t = 1)]
    pub(crate) rules: usize,
    /// With `--rules`, how many of them also have the Rust match plugin.
    #[arg(long, default_value_t = 100)]
    pub(crate) plugin_rules: usize,
    /// Directory holding the built plugins.
    #[arg(long, default_value = "plugins/rust/target/wasm32-wasip2/release")]
    pub(crate) plugins_dir: PathBuf,
    /// A Postgres server (`postgres://user@host/db`): the cycle throughput
    /// is measured on a fresh database there too.
    #[arg(long)]
    pub(crate) postgres: Option<String>,
    /// With `--rules`, seconds of idle CPU measured with the rules scheduled.
    #[arg(long, default_value_t = 60)]
    pub(crate) idle_seconds: u64,
}

pub(crate) fn config(dir: &std::path::Path, plugins: &std::path::Path) -> Config {
    Config {
        data_dir: dir.join("data"),
        api_key: Some("rh_bench_key_0123456789abcdef".into()),
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
        if args.rules > 1 {
            return crate::many_rules::run(args, &plugin).await;
        }
        let dir = tempfile::tempdir()?;
        throughput(args, &plugin, "SQLite", config(dir.path(), &args.plugins_dir)).await?;
        if let Some(server) = &args.postgres {
            let pg = crate::postgres::replica(
                config(dir.path(), &args.plugins_dir),
                &crate::postgres::fresh_database(server)?,
            )?;
            throughput(args, &plugin, "Postgres", pg).await?;
        }
        Ok(())
    })
}

fn spec(session: SessionId, filter: &str, plugin: Option<&std::path::Path>, webhook: &str) -> RuleSpec {
    let webhooks = vec![WebhookTarget::new(webhook)];
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
    let filter_rate = filter_alone(&store, session, filter).await?;
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
    println!("  the filter alone (in memory)        {filter_rate:>10.0} runs/s  (the same runs, already decoded)");
    if let [(_, _, a), (_, _, b)] = results.as_slice() {
        println!("  plugin cycle / filter-only cycle     {:>10.2}x time", a.as_secs_f64() / b.as_secs_f64());
    }
    Ok(())
}

/// The filter's own rate: evaluations per second over the window's runs
/// (read lean, as a cycle reads them), already in memory.
pub(crate) async fn filter_alone(
    store: &Arc<dyn runhook_store::Store>,
    session: SessionId,
    filter: &str,
) -> anyhow::Result<f64> {
    let upto = store.change_seq().await?;
    let mut runs = Vec::new();
    let mut after = runhook_core::model::ChangeSeq::START;
    loop {
        let page = store.window_runs(session, after, upto, 10_000).await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        runs.extend(page);
    }
    let filter = runhook_core::filter::Filter::parse(filter).map_err(|e| anyhow::anyhow!("{e}"))?;
    let started = Instant::now();
    let mut evaluated = 0usize;
    let mut matched = 0usize;
    while started.elapsed().as_millis() < 500 {
        matched += runs.iter().filter(|r| filter.matches(r, &[])).count();
        evaluated += runs.len();
    }
    std::hint::black_box(matched);
    Ok(evaluated as f64 / started.elapsed().as_secs_f64())
}
