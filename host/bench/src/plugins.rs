//! `runhook-bench plugins`: what a plugin call costs, per example plugin.
//!
//! For the no-op plugin and each example plugin, on a realistic 2 KB run
//! (or a payload carrying it, for transformers), it prints: compile from
//! scratch, load from the compile cache, fresh instance + call, and warm call
//! (instance reused, as within one rule cycle). Beside them it measures, in
//! the same process, a native baseline: parsing the same JSON with
//! serde_json, which is the bulk of what every example guest does. The ratio
//! to that baseline survives a noisy machine; absolute times do not.
//!
//! Build the plugins first: `plugins/build.sh` (release, wasm32-wasip2).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;

use runhook_plugins::{Capabilities, Capability, CompileCache, LoadedPlugin, PluginLimits, PluginSession};

use crate::sample_run;

#[derive(Debug, Args)]
pub(crate) struct PluginBenchArgs {
    /// Directory holding the built plugins (noop.wasm, llm_errors.wasm, ...).
    #[arg(long, default_value = "plugins/rust/target/wasm32-wasip2/release")]
    plugins_dir: PathBuf,
    /// Warm calls measured per plugin (fresh-instance calls use a tenth);
    /// each measurement also stops after 3 seconds.
    #[arg(long, default_value_t = 20_000)]
    iterations: u32,
    /// Directory holding the other languages' examples (python/example/example.wasm, js/..., c/..., go/...).
    #[arg(long, default_value = "plugins")]
    examples_dir: PathBuf,
}

/// The time budget of one measurement loop (large guests are slow to
/// instantiate; the mean over fewer calls is still a mean).
const BUDGET: Duration = Duration::from_secs(3);

struct Row {
    name: String,
    capability: Capability,
    size: usize,
    compile: Duration,
    cache_load: Duration,
    fresh: Duration,
    warm: Duration,
    warm_p50: Duration,
}

pub(crate) fn run(args: &PluginBenchArgs) -> anyhow::Result<ExitCode> {
    let engine = crate::engine()?;
    let cache_dir = tempfile::tempdir().context("cannot create a temporary cache directory")?;
    let cache = CompileCache::new(&engine, Some(cache_dir.path().to_path_buf()))?;
    let no_cache = CompileCache::new(&engine, None)?;
    let run = serde_json::to_string(&sample_run())?;
    let payload = serde_json::to_string(&serde_json::json!({
        "rule_id": "5b2a0a34-7d7e-4c1f-9a4f-4f1e0c8a9b21",
        "start_time": "2026-11-22T10:14:00+00:00", "end_time": "2026-11-22T10:15:00+00:00",
        "runs": [sample_run()], "feedback_stats": {}
    }))?;
    let dir = &args.plugins_dir;
    let mut cases: Vec<(String, PathBuf, Capability, &str, &str)> = vec![
        ("noop (match)".into(), dir.join("noop.wasm"), Capability::Match, &run, "null"),
        ("rust llm_errors (match)".into(), dir.join("llm_errors.wasm"), Capability::Match, &run, "null"),
        (
            "rust redact (transform)".into(),
            dir.join("redact.wasm"),
            Capability::Transform,
            &payload,
            r#"{"keys":["content","user_id"]}"#,
        ),
        ("rust output_score (eval)".into(), dir.join("output_score.wasm"), Capability::Evaluate, &run, "null"),
    ];
    // The other languages' examples implement the same matcher and evaluator.
    for lang in ["python", "js", "c", "go"] {
        let path = args.examples_dir.join(lang).join("example/example.wasm");
        if !path.is_file() {
            println!("({lang}: {} not built; run plugins/{lang}/build.sh)", path.display());
            continue;
        }
        cases.push((format!("{lang} (match)"), path.clone(), Capability::Match, &run, "null"));
        cases.push((format!("{lang} (eval)"), path, Capability::Evaluate, &run, "null"));
    }
    let warm_n = args.iterations.max(10);
    let fresh_n = (warm_n / 10).max(10);

    // The in-run baseline: parsing the 2 KB run natively.
    let native = time_per_call(warm_n, || {
        let v: serde_json::Value = serde_json::from_str(&run).unwrap_or_default();
        std::hint::black_box(v);
    });

    let mut rows = Vec::new();
    let mut failures: Vec<String> = Vec::new();
    for (name, path, capability, input, config) in cases {
        let name = name.as_str();
        let wasm = std::fs::read(&path)
            .with_context(|| format!("cannot read {}; build the plugins first (plugins/build.sh)", path.display()))?;
        let required = Capabilities::of(capability);
        let path = runhook_plugins::PluginLocation::File(path);
        // Large guests compile for seconds: one sample is enough for them.
        let samples = if wasm.len() > 1 << 20 { 1 } else { 3 };
        let compile = median((0..samples).map(|_| {
            let p = LoadedPlugin::from_bytes(&engine, &no_cache, name, &path, &wasm, required);
            p.map(|p| p.origin().elapsed())
        }))?;
        LoadedPlugin::from_bytes(&engine, &cache, name, &path, &wasm, required)?; // fills the cache
        let cache_load = median((0..20).map(|_| {
            LoadedPlugin::from_bytes(&engine, &cache, name, &path, &wasm, required).map(|p| p.origin().elapsed())
        }))?;
        let plugin = Arc::new(LoadedPlugin::from_bytes(&engine, &cache, name, &path, &wasm, required)?);
        // Generous limits: the bench measures cost, not the sandbox's bounds.
        let limits = PluginLimits { deadline: Duration::from_secs(10), ..PluginLimits::default() };
        let mut session = PluginSession::new(&engine, plugin, limits, "bench");
        let call = |s: &mut PluginSession| -> anyhow::Result<()> {
            match capability {
                Capability::Match => drop(s.matches(input, config)?),
                Capability::Transform => drop(s.transform(input, config)?),
                Capability::Evaluate => drop(s.evaluate(input, config)?),
            }
            Ok(())
        };
        call(&mut session)?; // warm up, and prove the call succeeds
        let fresh = mean(fresh_n, || {
            session.reset();
            call(&mut session)
        })?;
        call(&mut session)?;
        let mut samples = Vec::with_capacity(warm_n as usize);
        let started = Instant::now();
        let mut failure = None;
        while samples.len() < warm_n as usize && started.elapsed() < BUDGET {
            let t = Instant::now();
            if let Err(e) = call(&mut session) {
                // Reported, not fatal: a guest that fails after many calls
                // in one instance is a finding the table must show.
                failure = Some(format!("{name}: failed after {} warm calls in one instance: {e}", samples.len()));
                break;
            }
            samples.push(t.elapsed());
        }
        failures.extend(failure);
        let warm = started.elapsed() / samples.len().max(1) as u32;
        samples.sort_unstable();
        let warm_p50 = samples[samples.len() / 2];
        rows.push(Row {
            name: name.to_string(),
            capability,
            size: wasm.len(),
            compile,
            cache_load,
            fresh,
            warm,
            warm_p50,
        });
    }

    println!("runhook-bench plugins: {warm_n} warm calls, {fresh_n} fresh-instance calls per plugin");
    println!(
        "input: 2 KB run ({} bytes), payload {} bytes; pooling allocator: {}",
        run.len(),
        payload.len(),
        engine.pooling()
    );
    println!("baseline: native serde_json parse of the run = {:.2} µs", us(native));
    println!();
    println!(
        "{:<26} {:>9} {:>11} {:>11} {:>13} {:>10} {:>10} {:>11}",
        "plugin", "wasm KB", "compile ms", "cache ms", "fresh+call µs", "warm µs", "warm p50", "warm/native"
    );
    for r in &rows {
        println!(
            "{:<26} {:>9.1} {:>11.1} {:>11.3} {:>13.1} {:>10.2} {:>10.2} {:>10.1}x",
            r.name,
            r.size as f64 / 1024.0,
            r.compile.as_secs_f64() * 1e3,
            r.cache_load.as_secs_f64() * 1e3,
            us(r.fresh),
            us(r.warm),
            us(r.warm_p50),
            r.warm.as_secs_f64() / native.as_secs_f64().max(1e-12),
        );
        let _ = r.capability;
    }
    for f in &failures {
        println!("note: {f}");
    }
    println!();
    if let Some(noop) = rows.first() {
        println!(
            "host overhead per call (noop warm, 2 KB in): {:.2} µs (target ≤ 2 µs); fresh instance + call: {:.1} µs (target ≤ 40 µs, Rust)",
            us(noop.warm),
            us(noop.fresh)
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn time_per_call(n: u32, mut f: impl FnMut()) -> Duration {
    let started = Instant::now();
    for _ in 0..n {
        f();
    }
    started.elapsed() / n
}

fn mean(n: u32, mut f: impl FnMut() -> anyhow::Result<()>) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let mut done = 0;
    while done < n && (done == 0 || started.elapsed() < BUDGET) {
        f()?;
        done += 1;
    }
    Ok(started.elapsed() / done.max(1))
}

fn median<E: Into<anyhow::Error>>(samples: impl Iterator<Item = Result<Duration, E>>) -> anyhow::Result<Duration> {
    let mut v = samples.collect::<Result<Vec<_>, E>>().map_err(Into::into)?;
    v.sort_unstable();
    v.get(v.len() / 2).copied().context("no samples")
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}
