//! `runhook-bench rules --rules N`: many rules on one project sharing its
//! window, beside one rule alone; then what the rules cost at rest.
//!
//! Throughput: N rules with filters of the kinds users write (a run name,
//! a customer in the metadata on errored LLM calls, a team's tag over a
//! token count, a name with an error, and one in fifty a full-text search),
//! `--plugin-rules` of them also with the Rust `llm_errors` match plugin,
//! are created on a fresh store; 100,000 runs are written, and every rule
//! runs one cycle over the window at once, through one engine (as the
//! scheduler runs them). Printed: runs x rules evaluated per second, store
//! reads per window page (1.0 when every rule shares each read), CPU per
//! run per rule; beside one rule's cycle over the same window alone.
//!
//! At rest (SQLite, measured first, in a process that has not yet grown
//! with the throughput runs): the service runs in this process. Its CPU over
//! `--idle-seconds` with no rules, then with N rules scheduled (after each
//! ran its first cycle); resident memory at start, with the N rules, and
//! after `--plugin-rules` more rules with the plugin have each called it.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::process::{cpu_since, cpu_time, rss_mib};
use crate::rules::{RulesBenchArgs, config};
use runhook_core::model::{
    PluginRef, PluginSource, Rule, RuleId, RulePlugins, RuleSpec, RunId, RunType, RunWrite, SessionId, Timestamp,
    WebhookTarget,
};
use runhook_server::rules::pipeline::{Engine, Prepared, run_cycle};
use runhook_server::rules::window::PAGE;
use runhook_store::{Announcement, IngestBatch, Store};

const PROJECT: &str = "many";

pub(crate) async fn run(args: &RulesBenchArgs, plugin: &Path) -> anyhow::Result<()> {
    println!(
        "runhook-bench rules --rules {}: one project, {} runs, {} rules with the Rust match plugin",
        args.rules, args.runs, args.plugin_rules
    );
    // At rest first: the process has not yet grown with a throughput run.
    let dir = tempfile::tempdir()?;
    at_rest(args, plugin, config(dir.path(), &args.plugins_dir)).await?;
    let dir = tempfile::tempdir()?;
    throughput(args, plugin, "SQLite", config(dir.path(), &args.plugins_dir)).await?;
    if let Some(server) = &args.postgres {
        let url = crate::postgres::fresh_database(server)?;
        let pg = crate::postgres::replica(config(dir.path(), &args.plugins_dir), &url)?;
        throughput(args, plugin, "Postgres", pg).await?;
    }
    Ok(())
}

/// Run `i` of the window.
fn run_write(i: usize) -> RunWrite {
    let errored = i.is_multiple_of(5);
    RunWrite {
        id: Some(RunId::new_v7()),
        name: Some(format!("op-{}", i % 1000)),
        run_type: Some(if errored { RunType::Llm } else { RunType::Chain }),
        session_name: Some(PROJECT.into()),
        start_time: Some(Timestamp::now()),
        end_time: Some(Timestamp::now()),
        error: errored.then(|| "RateLimitError: slow down".into()),
        inputs: Some(json!({"question": format!("where is order-{} ?", i % 100)})),
        outputs: Some(json!({"output": format!("answer {i}")})),
        tags: Some(vec![format!("team-{}", i % 50)]),
        extra: Some(json!({"metadata": {"customer": format!("c-{}", i % 500)}})),
        total_tokens: Some((i % 1000 + 100) as i64),
        ..RunWrite::default()
    }
}

/// Rule `k`'s filter: the kinds users write.
fn filter(k: usize) -> String {
    match k % 50 {
        49 => format!(r#"search("order-{}")"#, k % 100),
        _ => match k % 4 {
            0 => format!(r#"eq(name, "op-{}")"#, k % 1000),
            1 => format!(
                r#"and(eq(run_type, "llm"), neq(error, null), eq(metadata_key, "customer"), eq(metadata_value, "c-{}"))"#,
                k % 500
            ),
            2 => format!(r#"and(has(tags, "team-{}"), gt(total_tokens, 900))"#, k % 50),
            _ => format!(r#"and(eq(name, "op-{}"), neq(error, null))"#, k % 1000),
        },
    }
}

fn spec(session: SessionId, k: usize, plugin: Option<&Path>) -> RuleSpec {
    let webhooks = vec![WebhookTarget::new("http://127.0.0.1:9/")];
    RuleSpec {
        filter: Some(filter(k)),
        plugins: RulePlugins {
            matcher: plugin.map(|p| PluginRef::new(PluginSource::Path(p.display().to_string()))),
            ..RulePlugins::default()
        },
        ..RuleSpec::new(format!("rule {k}"), session, webhooks)
    }
}

async fn project(store: &Arc<dyn Store>) -> anyhow::Result<SessionId> {
    store.ingest(IngestBatch { posts: vec![run_write(1)], ..IngestBatch::default() }).await?;
    let q = runhook_store::SessionQuery { name: Some(PROJECT.into()), limit: 1, ..Default::default() };
    Ok(store.list_sessions(&q).await?.first().context("bench project")?.id)
}

async fn throughput(
    args: &RulesBenchArgs,
    plugin: &Path,
    store_name: &str,
    config: runhook_server::config::Config,
) -> anyhow::Result<()> {
    let app = runhook::backend::prepare(config).await?;
    let (store, plugins) = (app.state().store.clone(), app.state().plugins.clone());
    let session = project(&store).await?;
    let mut rules: Vec<Rule> = Vec::new();
    for k in 0..args.rules {
        let with_plugin = (k < args.plugin_rules).then_some(plugin);
        rules.push(store.create_rule(RuleId::new_v4(), &spec(session, k, with_plugin)).await?);
    }
    let alone = store.create_rule(RuleId::new_v4(), &spec(session, 0, None)).await?;
    for chunk in (0..args.runs).collect::<Vec<_>>().chunks(1000) {
        let posts = chunk.iter().map(|i| run_write(*i)).collect();
        store.ingest(IngestBatch { posts, ..IngestBatch::default() }).await?;
    }
    let pages = args.runs.div_ceil(PAGE) as f64;

    // One rule alone: its own engine, its own reads.
    let engine = Engine::new(store.clone(), plugins.clone());
    let (started, cpu) = (Instant::now(), cpu_time());
    let report = run_cycle(&engine, &Prepared::new(alone)?, None, 0).await?;
    let (one_wall, one_cpu) = (started.elapsed(), cpu_since(cpu));
    let one_reads = engine.windows.reads() as f64;

    // Every rule at once, through one engine.
    let engine = Engine::new(store.clone(), plugins.clone());
    let prepared: Vec<Prepared> = rules.into_iter().map(Prepared::new).collect::<Result<_, _>>()?;
    let (started, cpu) = (Instant::now(), cpu_time());
    let tasks: Vec<_> = prepared
        .into_iter()
        .map(|p| {
            let engine = engine.clone();
            tokio::spawn(async move { run_cycle(&engine, &p, None, 0).await })
        })
        .collect();
    let (mut evaluated, mut matched) = (0usize, 0usize);
    for task in tasks {
        let r = task.await??;
        (evaluated, matched) = (evaluated + r.candidates, matched + r.actioned);
    }
    let (all_wall, all_cpu) = (started.elapsed(), cpu_since(cpu));
    let all_reads = engine.windows.reads() as f64;

    let per = |cpu: Option<Duration>, n: usize| {
        cpu.map_or("n/a".into(), |c| format!("{:.2} µs", c.as_secs_f64() * 1e6 / n as f64))
    };
    println!("  throughput ({store_name}), one cycle of every rule over the window at once:");
    println!(
        "    1 rule alone (baseline)    {:>12.0} runs x rules/s   CPU {} per run per rule   {:.1} store reads per window page   ({} matched, {:.2} s)",
        report.candidates as f64 / one_wall.as_secs_f64(),
        per(one_cpu, report.candidates),
        one_reads / pages,
        report.actioned,
        one_wall.as_secs_f64()
    );
    println!(
        "    {:>5} rules sharing reads  {:>12.0} runs x rules/s   CPU {} per run per rule   {:.1} store reads per window page   ({} matched, {:.2} s)",
        args.rules,
        evaluated as f64 / all_wall.as_secs_f64(),
        per(all_cpu, evaluated),
        all_reads / pages,
        matched,
        all_wall.as_secs_f64()
    );
    Ok(())
}

/// CPU and memory of the running service with the rules at rest.
async fn at_rest(args: &RulesBenchArgs, plugin: &Path, config: runhook_server::config::Config) -> anyhow::Result<()> {
    let app = runhook::backend::prepare(config).await?;
    let store = app.state().store.clone();
    let stop = CancellationToken::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let server = tokio::spawn(app.serve(listener, stop.clone()));
    let session = project(&store).await?;
    let idle = Duration::from_secs(args.idle_seconds);

    let rss_start = rss_mib()?;
    let cpu = cpu_time();
    tokio::time::sleep(idle).await;
    let cpu_none = cpu_since(cpu);

    let mut rules = Vec::new();
    for k in 0..args.rules {
        rules.push(store.create_rule(RuleId::new_v4(), &spec(session, k, None)).await?.id);
    }
    store.announce(Announcement::RulesChanged).await?;
    cycled(&store, &rules).await?;
    let rss_rules = rss_mib()?;
    let cpu = cpu_time();
    tokio::time::sleep(idle).await;
    let cpu_rules = cpu_since(cpu);

    let mut plugin_rules = Vec::new();
    for k in 0..args.plugin_rules {
        plugin_rules.push(store.create_rule(RuleId::new_v4(), &spec(session, k, Some(plugin))).await?.id);
    }
    store.announce(Announcement::RulesChanged).await?;
    cycled(&store, &plugin_rules).await?;
    // Runs every plugin rule's filter selects, so that each calls its plugin.
    let posts = (0..1000).map(run_write).collect();
    store.ingest(IngestBatch { posts, ..IngestBatch::default() }).await?;
    let all: Vec<RuleId> = rules.iter().chain(&plugin_rules).copied().collect();
    saw_runs(&store, &all).await?;
    let rss_plugins = rss_mib()?;
    stop.cancel();
    server.await.context("server task")??;

    let ms = |c: Option<Duration>| c.map_or("n/a".into(), |c| format!("{:.0} ms", c.as_secs_f64() * 1e3));
    println!("  at rest (SQLite, the whole service in this process):");
    println!("    CPU over {} s idle, no rules (baseline)   {}", args.idle_seconds, ms(cpu_none));
    println!("    CPU over {} s idle, {} rules              {}", args.idle_seconds, args.rules, ms(cpu_rules));
    println!("    RSS at start                              {rss_start:.1} MiB");
    println!(
        "    RSS with {} rules                        {rss_rules:.1} MiB   ({:.1} KiB per rule)",
        args.rules,
        (rss_rules - rss_start) * 1024.0 / args.rules as f64
    );
    println!(
        "    RSS with {} more plugin rules, each called {rss_plugins:.1} MiB   ({:.1} KiB per plugin rule)",
        args.plugin_rules,
        (rss_plugins - rss_rules) * 1024.0 / args.plugin_rules.max(1) as f64
    );
    Ok(())
}

/// Waits until each rule has run a cycle.
async fn cycled(store: &Arc<dyn Store>, rules: &[RuleId]) -> anyhow::Result<()> {
    for id in rules {
        while store.rule_cycles(*id, 1).await?.is_empty() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    Ok(())
}

/// Waits until each rule's last cycle considered runs.
async fn saw_runs(store: &Arc<dyn Store>, rules: &[RuleId]) -> anyhow::Result<()> {
    for id in rules {
        while store.rule_cycles(*id, 1).await?.first().is_none_or(|c| c.candidates == 0) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    Ok(())
}
