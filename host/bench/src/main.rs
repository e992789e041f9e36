//! runhook's benchmarks: programs that print figures beside a baseline
//! measured in the same run, so a ratio survives a noisy machine where an
//! absolute time does not. They are not part of the shipped `runhook`
//! binary; run them with `cargo run --release -p runhook-bench -- <bench>`.
//!
//! - [`plugins`]: per-plugin compile, cache-load, instantiation and call costs.
//! - [`ingest`]: ingest throughput over HTTP beside the raw store insert rate.
//! - [`filter`]: filter evaluations per second for representative filters.
//! - [`rules`]: rule-cycle throughput, one rule beside the filter alone.
//! - [`many_rules`]: a thousand rules sharing a project's window; idle CPU, memory.
//! - [`latency`]: ingest-to-receiver latency, wake-ups on beside off.
//! - [`delivery`]: webhook deliveries per second beside a bare reqwest loop.
//! - [`payloads`]: payload rendering with the large-field check beside none.
//! - [`soak`]: steady load for a long time; memory, files and latencies per minute.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use runhook_plugins::{EngineSettings, PluginEngine};

mod alerts;
mod delivery;
mod filter;
mod ingest;
mod latency;
mod many_rules;
mod payloads;
mod plugins;
mod postgres;
mod process;
mod rules;
mod soak;

/// runhook's benchmarks.
#[derive(Debug, Parser)]
#[command(name = "runhook-bench", version, about)]
struct Cli {
    #[command(subcommand)]
    command: BenchCommand,
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// Per-plugin call, instantiation, compile and cache-load costs.
    Plugins(plugins::PluginBenchArgs),
    /// Ingest throughput over HTTP beside the raw store insert rate.
    Ingest(ingest::IngestBenchArgs),
    /// Filter evaluations per second for representative filters.
    Filters(filter::FilterBenchArgs),
    /// Rule-cycle throughput: one rule, or many sharing a window (`--rules`).
    Rules(rules::RulesBenchArgs),
    /// Ingest-to-receiver latency under steady load, wake-ups on and off.
    Latency(latency::LatencyBenchArgs),
    /// Webhook deliveries per second beside a bare reqwest loop.
    Deliveries(delivery::DeliveryBenchArgs),
    /// Payload rendering with the large-field check beside every field inline.
    Payloads(payloads::PayloadBenchArgs),
    /// Steady load for a long time: memory, open files and latencies per minute.
    Soak(soak::SoakBenchArgs),
    /// Alert rules under steady ingest: CPU per evaluation round, crossing-to-notification time.
    Alerts(alerts::AlertsBenchArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The benchmarks print their own report; they log only warnings (RUST_LOG overrides).
    runhook::cli::init_logging(runhook::cli::LogFormat::Human, 0, true);
    let ran = match cli.command {
        BenchCommand::Plugins(args) => plugins::run(&args),
        BenchCommand::Ingest(args) => ingest::run(&args).map(|()| ExitCode::SUCCESS),
        BenchCommand::Filters(args) => filter::run(&args).map(|()| ExitCode::SUCCESS),
        BenchCommand::Rules(args) => rules::run(&args).map(|()| ExitCode::SUCCESS),
        BenchCommand::Latency(args) => latency::run(&args).map(|()| ExitCode::SUCCESS),
        BenchCommand::Deliveries(args) => delivery::run(&args).map(|()| ExitCode::SUCCESS),
        BenchCommand::Payloads(args) => payloads::run(&args).map(|()| ExitCode::SUCCESS),
        BenchCommand::Soak(args) => soak::run(&args).map(|()| ExitCode::SUCCESS),
        BenchCommand::Alerts(args) => alerts::run(&args).map(|()| ExitCode::SUCCESS),
    };
    match ran {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}

fn engine() -> anyhow::Result<PluginEngine> {
    Ok(PluginEngine::new(&EngineSettings::default())?)
}

/// A run as the SDK sends it: an LLM call with messages, outputs, metadata.
pub(crate) fn sample_run() -> serde_json::Value {
    let mut run = serde_json::json!({
        "id": "0193b8f2-4f1c-7a2e-9d3b-6c5e4a3b2c1d",
        "name": "ChatOpenAI",
        "run_type": "llm",
        "trace_id": "0193b8f2-4f1c-7a2e-9d3b-6c5e4a3b2c1d",
        "dotted_order": "20261122T101500000000Z0193b8f2-4f1c-7a2e-9d3b-6c5e4a3b2c1d",
        "parent_run_id": null,
        "start_time": "2026-11-22T10:15:00.000000",
        "end_time": "2026-11-22T10:15:01.234000",
        "status": "error",
        "error": "RateLimitError: Rate limit reached for gpt-4o in organization org-xyz on tokens per min",
        "inputs": {"messages": [
            {"role": "system", "content": "You are a helpful assistant for a travel agency. Answer concisely."},
            {"role": "user", "content": "Which documents do I need to travel from Berlin to Tokyo for two weeks?"}
        ]},
        "outputs": {"generations": [[{"text": "", "generation_info": {"finish_reason": "error"}}]]},
        "tags": ["production", "travel-bot", "gpt-4o"],
        "extra": {"metadata": {"ls_provider": "openai", "ls_model_name": "gpt-4o", "ls_temperature": 0.2,
                   "user_id": "u-4711", "thread_id": "t-2026-11-22-0001", "revision_id": "v1.42.0"},
                  "runtime": {"sdk": "langsmith-py", "sdk_version": "0.4.37", "platform": "linux", "python_version": "3.11.7"}},
        "session_id": "0f5a2c9e-8a55-4a8e-9f77-2b0c7c6f2d10",
        "prompt_tokens": 412, "completion_tokens": 0, "total_tokens": 412,
        "feedback_stats": {},
        "events": [{"name": "start", "time": "2026-11-22T10:15:00.000000"}, {"name": "error", "time": "2026-11-22T10:15:01.234000"}]
    });
    // Pad to about 2 KB with a realistic retrieval context.
    let context =
        "Travellers holding a German passport may enter Japan visa-free for up to 90 days for tourism. ".repeat(9);
    run["inputs"]["context"] = serde_json::Value::String(context);
    run
}
