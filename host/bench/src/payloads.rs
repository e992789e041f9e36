//! Webhook payload rendering: runs per second into payload bodies with the
//! large-field check on (a server's default, 1 MiB), beside the same
//! payloads with no check (every field inline) in the same run. The check
//! decides, per run, whether its inputs and outputs go inline or by link.

use std::time::Instant;

use clap::Args;
use serde_json::{Map, Value, json};

use runhook_core::model::{RuleId, RunId, Timestamp};
use runhook_server::links::Links;
use runhook_server::payload::{self, LargeFields, RenderedRun};

/// Options of `runhook-bench payloads`.
#[derive(Debug, Args)]
pub(crate) struct PayloadBenchArgs {
    /// Runs rendered per round.
    #[arg(long, default_value_t = 2000)]
    runs: usize,
    /// Rounds of each variant (alternated; the best round counts).
    #[arg(long, default_value_t = 10)]
    rounds: usize,
    /// Bytes of text in each run's inputs and in its outputs.
    #[arg(long, default_value_t = 4096)]
    field_bytes: usize,
}

fn run_json(i: usize, field_bytes: usize) -> Map<String, Value> {
    let text = "The quick brown fox \"jumps\" over the lazy dog.\n".repeat(field_bytes / 40 + 1);
    let v = json!({
        "id": RunId::new_v4(), "name": "ChatOpenAI", "run_type": "llm", "status": "success", "is_root": false,
        "trace_id": RunId::new_v4(), "dotted_order": format!("20261205T000000000000Z{i}"),
        "start_time": "2026-12-05T00:00:00", "end_time": "2026-12-05T00:00:01", "session_id": RunId::new_v4(),
        "total_tokens": 812, "prompt_tokens": 700, "completion_tokens": 112, "total_cost": 0.00123,
        "inputs": {"messages": [{"role": "system", "content": &text[..field_bytes / 2]},
                                {"role": "user", "content": &text[..field_bytes / 2]}]},
        "outputs": {"generations": [{"text": &text[..field_bytes], "score": 0.5}]},
        "extra": {"metadata": {"thread_id": "t-1", "user_id": i}}, "tags": ["bench"], "error": null,
        "inputs_s3_urls": null, "outputs_s3_urls": null,
    });
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// Runs the benchmark and prints its report.
pub(crate) fn run(args: &PayloadBenchArgs) -> anyhow::Result<()> {
    let runs: Vec<RenderedRun> = (0..args.runs)
        .map(|i| RenderedRun { id: RunId::new_v4(), json: run_json(i, args.field_bytes), feedback: Vec::new() })
        .collect();
    let large = LargeFields { max_bytes: 1 << 20, lifetime_secs: 86_400, links: Links::new("bench-key") };
    let (rule, now) = (RuleId::new_v4(), Timestamp::now());
    let (mut checked, mut inline) = (f64::MAX, f64::MAX);
    let mut bytes = 0;
    for _ in 0..args.rounds.max(1) {
        for (best, large) in [(&mut checked, Some(&large)), (&mut inline, None)] {
            let started = Instant::now();
            let parts = payload::payloads(rule, now, now, &runs, 100, large);
            *best = best.min(started.elapsed().as_secs_f64());
            bytes = parts.iter().map(|p| p.body.len()).sum::<usize>();
        }
    }
    println!(
        "runhook-bench payloads: {} runs with {} B inputs and outputs, 100 a payload ({:.1} MB of bodies), best of {}",
        args.runs,
        args.field_bytes,
        bytes as f64 / 1e6,
        args.rounds
    );
    println!("  size check on (1 MiB, the default)   {:>10.0} runs/s", args.runs as f64 / checked);
    println!("  every field inline (baseline)        {:>10.0} runs/s", args.runs as f64 / inline);
    println!("  check / inline                       {:>10.2}x time", checked / inline);
    Ok(())
}
