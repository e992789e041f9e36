//! `runhook plugin check`, `run` and `upload`: the plugin author's loop.
//!
//! `check` loads a component the way a rule would and reports what it
//! exports and imports, whether its code came from the compile cache and what
//! compiling or loading cost. `run` calls one capability on a JSON file and
//! prints the result (or the typed error) with the time taken, under the same
//! sandbox and limits a rule applies. `upload` sends a checked component to
//! a running server, which stores it for every replica, and prints the
//! digest a rule names it by.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::json;

use super::CacheArgs;
use runhook_plugins::{Capabilities, Capability, LoadedPlugin, PluginLimits, PluginSession};

#[derive(Debug, Subcommand)]
pub(super) enum PluginCommand {
    /// Load a plugin and report its capabilities, imports and compile/cache status.
    Check(CheckArgs),
    /// Call one capability of a plugin on a JSON file and print the result.
    Run(RunArgs),
    /// Create a plugin project in Rust, Python, JavaScript, C or Go that builds with ./build.sh.
    New(super::scaffold::NewArgs),
    /// Upload a plugin to a running server (stored by its SHA-256, for every replica); prints the
    /// digest a rule names it by.
    Upload(UploadArgs),
}

#[derive(Debug, Args)]
pub(super) struct UploadArgs {
    /// The plugin component (.wasm).
    file: PathBuf,
    /// Its name in listings and logs [default: the file's name without .wasm].
    #[arg(long)]
    name: Option<String>,
    #[command(flatten)]
    server: super::client::ServerArgs,
}

#[derive(Debug, Args)]
pub(super) struct CheckArgs {
    /// The plugin component (.wasm).
    file: PathBuf,
    /// Fail unless the plugin provides these (comma-separated: match,transform,evaluate).
    #[arg(long, value_delimiter = ',', value_parser = parse_capability)]
    require: Vec<Capability>,
    /// Print a JSON report instead of text.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    cache: CacheArgs,
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("capability").required(true).multiple(false))]
pub(super) struct RunArgs {
    /// The plugin component (.wasm), or `builtin:NAME` for a shipped
    /// message format (`builtin:slack`, `builtin:pagerduty` ...).
    file: PathBuf,
    /// Call `matches` on the run in this JSON file ("-" for stdin).
    #[arg(long = "match", group = "capability", value_name = "JSON_FILE")]
    match_input: Option<PathBuf>,
    /// Call `transform` on the payload in this JSON file ("-" for stdin).
    #[arg(long = "transform", group = "capability", value_name = "JSON_FILE")]
    transform_input: Option<PathBuf>,
    /// Call `evaluate` on the run in this JSON file ("-" for stdin).
    #[arg(long = "evaluate", group = "capability", value_name = "JSON_FILE")]
    evaluate_input: Option<PathBuf>,
    /// The plugin's config, as JSON text.
    #[arg(long, default_value = "null")]
    config: String,
    /// Call deadline in milliseconds.
    #[arg(long, default_value_t = PluginLimits::DEFAULT_DEADLINE.as_millis() as u64)]
    deadline_ms: u64,
    /// Memory cap in MiB.
    #[arg(long, default_value_t = PluginLimits::DEFAULT_MEMORY_BYTES >> 20)]
    memory_mib: usize,
    /// Print a JSON report instead of text.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    cache: CacheArgs,
}

fn parse_capability(s: &str) -> Result<Capability, String> {
    match s.trim() {
        "match" | "matcher" => Ok(Capability::Match),
        "transform" | "transformer" => Ok(Capability::Transform),
        "evaluate" | "evaluator" => Ok(Capability::Evaluate),
        other => Err(format!("unknown capability {other:?}; expected match, transform or evaluate")),
    }
}

pub(super) fn run(cmd: PluginCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        PluginCommand::Check(args) => check(&args),
        PluginCommand::Run(args) => run_plugin(&args),
        PluginCommand::Upload(args) => upload(&args),
        PluginCommand::New(args) => {
            let root = super::scaffold::create(&args)?;
            println!("created {}", root.display());
            println!("  build:  {}/build.sh", root.display());
            println!("  check:  runhook plugin check {}/*.wasm --require match,evaluate", root.display());
            println!("  try:    runhook plugin run PLUGIN.wasm --match run.json --config '{{}}'");
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Checks the component here (a refusal needs no server), then uploads it.
fn upload(args: &UploadArgs) -> anyhow::Result<ExitCode> {
    let name = args.name.clone().unwrap_or_else(|| plugin_name(&args.file));
    let wasm =
        runhook_plugins::PluginFiles::anywhere(runhook_plugins::DEFAULT_MAX_PLUGIN_BYTES).read(&name, &args.file)?;
    if let Err(err) = runhook_plugins::probe::probe(&name, &wasm, Capabilities::default()) {
        return Ok(check_failed(args.server.json, &name, &err));
    }
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let query = [("name", name)];
    let (status, record) =
        runtime.block_on(super::client::post_bytes(&args.server, "/api/v1/plugins", &query, wasm))?;
    if args.server.json {
        println!("{record:#}");
        return Ok(ExitCode::SUCCESS);
    }
    let text = |key: &str| record[key].as_str().unwrap_or("?").to_string();
    let capabilities: Vec<&str> =
        record["capabilities"].as_array().into_iter().flatten().filter_map(serde_json::Value::as_str).collect();
    let what = if status == reqwest::StatusCode::CREATED { "uploaded" } else { "already uploaded" };
    println!("{what} {} ({} bytes; {})", text("name"), record["size"], capabilities.join(", "));
    println!("sha256  {}", text("sha256"));
    println!(
        "use it in a rule: \"plugins\": {{\"{}\": {{\"sha256\": \"{}\"}}}}",
        capabilities.first().unwrap_or(&"match"),
        text("sha256")
    );
    Ok(ExitCode::SUCCESS)
}

fn plugin_name(path: &Path) -> String {
    path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "plugin".into())
}

fn check(args: &CheckArgs) -> anyhow::Result<ExitCode> {
    let engine = super::engine()?;
    let cache = args.cache.open(&engine)?;
    let name = plugin_name(&args.file);
    let required: Capabilities = args.require.iter().copied().collect();
    let plugin = match LoadedPlugin::load(&engine, &cache, &name, &args.file, required) {
        Ok(plugin) => plugin,
        Err(err) => return Ok(check_failed(args.json, &name, &err)),
    };
    // Instantiating once proves the sandbox can host it (start functions run).
    let mut session = PluginSession::new(&engine, std::sync::Arc::new(plugin), PluginLimits::default(), "check");
    let started = Instant::now();
    let (plugin, inst_time) = match session.instantiate() {
        Ok(()) => (session.plugin().clone(), started.elapsed()),
        Err(err) => return Ok(check_failed(args.json, &name, &err)),
    };
    let origin = plugin.origin();
    if args.json {
        let report = json!({
            "ok": true,
            "plugin": plugin.name(),
            "path": plugin.location().to_string(),
            "size_bytes": plugin.size(),
            "sha256": plugin.hash(),
            "capabilities": plugin.capabilities().iter().map(|c| c.to_string()).collect::<Vec<_>>(),
            "exports": plugin.exports(),
            "imports": plugin.imports(),
            "cache": if origin.is_cache_hit() { "hit" } else if cache.dir().is_some() { "miss" } else { "off" },
            "load_ms": ms(origin.elapsed()),
            "instantiate_ms": ms(inst_time),
        });
        println!("{report:#}");
    } else {
        println!("plugin        {}", plugin.name());
        println!("file          {} ({} bytes)", plugin.location(), plugin.size());
        println!("sha256        {}", plugin.hash());
        println!("capabilities  {}", plugin.capabilities());
        println!("exports       {}", plugin.exports().join(", "));
        println!(
            "imports       {}",
            if plugin.imports().is_empty() { "none".into() } else { plugin.imports().join(", ") }
        );
        match (origin.is_cache_hit(), cache.dir()) {
            (true, _) => println!("code          loaded from cache in {:.2} ms", ms(origin.elapsed())),
            (false, Some(dir)) => println!(
                "code          compiled in {:.1} ms (cache miss; stored in {})",
                ms(origin.elapsed()),
                dir.display()
            ),
            (false, None) => println!("code          compiled in {:.1} ms (cache off)", ms(origin.elapsed())),
        }
        println!("instantiate   {:.3} ms", ms(inst_time));
        println!("OK");
    }
    Ok(ExitCode::SUCCESS)
}

/// Reports a failed check, as JSON or text; exit code 1.
fn check_failed(as_json: bool, name: &str, err: &runhook_plugins::PluginError) -> ExitCode {
    if as_json {
        println!("{}", json!({"ok": false, "plugin": name, "error": err.to_string(), "kind": err.kind()}));
    } else {
        eprintln!("FAILED {err}");
    }
    ExitCode::from(1)
}

fn run_plugin(args: &RunArgs) -> anyhow::Result<ExitCode> {
    let (capability, input_path) = match (&args.match_input, &args.transform_input, &args.evaluate_input) {
        (Some(p), _, _) => (Capability::Match, p),
        (_, Some(p), _) => (Capability::Transform, p),
        (_, _, Some(p)) => (Capability::Evaluate, p),
        _ => anyhow::bail!("one of --match, --transform, --evaluate is required"),
    };
    let input = read_input(input_path)?;
    serde_json::from_str::<serde::de::IgnoredAny>(&input)
        .with_context(|| format!("{} is not valid JSON", input_path.display()))?;
    serde_json::from_str::<serde::de::IgnoredAny>(&args.config).context("--config is not valid JSON")?;
    anyhow::ensure!(args.deadline_ms > 0, "--deadline-ms must be at least 1");
    anyhow::ensure!(args.memory_mib > 0, "--memory-mib must be at least 1");
    let limits =
        PluginLimits { deadline: Duration::from_millis(args.deadline_ms), memory_bytes: args.memory_mib << 20 };

    let engine = super::engine()?;
    let cache = args.cache.open(&engine)?;
    let name = plugin_name(&args.file);
    let required = Capabilities::of(capability);
    let loaded = match args.file.to_str().and_then(|f| f.strip_prefix("builtin:")) {
        Some(format) => match runhook_formats::component(format) {
            Some(bytes) => {
                let at = runhook_plugins::PluginLocation::Builtin(format.to_string());
                LoadedPlugin::from_bytes(&engine, &cache, format, &at, bytes, required)
            }
            None => Err(runhook_plugins::PluginError::UnknownBuiltin {
                name: format.to_string(),
                known: runhook_plugins::builtin_names(),
            }),
        },
        None => LoadedPlugin::load(&engine, &cache, &name, &args.file, required),
    };
    let plugin = match loaded {
        Ok(plugin) => plugin,
        Err(err) => return Ok(report_error(args.json, &err, None)),
    };
    let mut session = PluginSession::new(&engine, std::sync::Arc::new(plugin), limits, "cli");
    let started = Instant::now();
    let result = match capability {
        Capability::Match => session.matches(&input, &args.config).map(|b| json!(b)),
        Capability::Transform => session.transform(&input, &args.config).map(|body| {
            serde_json::from_str(&body).unwrap_or(serde_json::Value::String(body)) // validated as JSON above
        }),
        Capability::Evaluate => session.evaluate(&input, &args.config).map(|evals| {
            json!(
                evals
                    .iter()
                    .map(|e| json!({"key": e.key, "score": e.score, "value": e.value, "comment": e.comment}))
                    .collect::<Vec<_>>()
            )
        }),
    };
    let elapsed = started.elapsed();
    match result {
        Ok(value) => {
            if args.json {
                println!(
                    "{}",
                    json!({"ok": true, "capability": capability.to_string(), "result": value, "elapsed_ms": ms(elapsed)})
                );
            } else {
                println!("{value:#}");
                eprintln!("{} took {:.3} ms (instantiate + call)", capability.function(), ms(elapsed));
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(err) => Ok(report_error(args.json, &err, Some(elapsed))),
    }
}

fn report_error(as_json: bool, err: &runhook_plugins::PluginError, elapsed: Option<Duration>) -> ExitCode {
    if as_json {
        println!(
            "{}",
            json!({"ok": false, "error": err.to_string(), "kind": err.kind(), "elapsed_ms": elapsed.map(ms)})
        );
    } else {
        eprintln!("FAILED {err}");
        if let Some(elapsed) = elapsed {
            eprintln!("after {:.3} ms", ms(elapsed));
        }
    }
    ExitCode::from(1)
}

fn read_input(path: &Path) -> anyhow::Result<String> {
    if path == Path::new("-") {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text).context("cannot read stdin")?;
        return Ok(text);
    }
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
