//! The command line: what each subcommand takes, and dispatch.
//!
//! Subcommands are thin: they parse and validate arguments, call the library,
//! and print. Exit codes: 0 success, 1 the plugin (or check) failed, 2 the
//! command itself could not run (bad arguments, unreadable files).

mod client;
mod deliveries;
mod demo;
mod keys;
mod migrate;
mod plugin;
mod scaffold;
mod serve;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use runhook_plugins::{CompileCache, EngineSettings, PluginEngine};

/// runhook: automation rules for LLM-application traces, with WebAssembly plugins.
#[derive(Debug, Parser)]
#[command(name = "runhook", version, about)]
pub struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human, env = "RUNHOOK_LOG_FORMAT")]
    pub log_format: LogFormat,
    /// More log detail (-v debug, -vv trace); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    command: Command,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Readable lines.
    Human,
    /// One JSON object per line.
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Show the main job end to end: rules, plugins, webhooks, on a temporary store.
    Demo(demo::DemoArgs),
    /// Run the service: the LangSmith-compatible API (and, as they land, rules and delivery).
    Serve(serve::ServeArgs),
    /// Build, inspect and try out plugins.
    #[command(subcommand)]
    Plugin(plugin::PluginCommand),
    /// Inspect webhook deliveries and redeliver them (a client of a running server).
    #[command(subcommand)]
    Deliveries(deliveries::DeliveriesCommand),
    /// Manage the keys that seal webhook URLs, headers and signing secrets at rest.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Move the embedded store to a Postgres database (sqlite:DIR -> postgres://...), server stopped.
    MigrateStore(migrate::MigrateArgs),
}

/// Where compiled plugin code is cached, shared by the plugin subcommands.
#[derive(Debug, Clone, clap::Args)]
struct CacheArgs {
    /// Compile-cache directory [default: $XDG_CACHE_HOME/runhook/plugins or ~/.cache/runhook/plugins].
    #[arg(long, env = "RUNHOOK_PLUGIN_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
    /// Compile every time; read and write no cache.
    #[arg(long, conflicts_with = "cache_dir")]
    no_cache: bool,
}

impl CacheArgs {
    fn open(&self, engine: &PluginEngine) -> anyhow::Result<CompileCache> {
        let dir = if self.no_cache { None } else { Some(self.cache_dir.clone().unwrap_or_else(default_cache_dir)) };
        Ok(CompileCache::new(engine, dir)?)
    }
}

fn default_cache_dir() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("runhook").join("plugins")
}

fn engine() -> anyhow::Result<PluginEngine> {
    Ok(PluginEngine::new(&EngineSettings::default())?)
}

impl Cli {
    /// The log level when neither `-v` nor `RUST_LOG` says otherwise: the
    /// demo prints its own report, so it logs only warnings.
    pub fn quiet_by_default(&self) -> bool {
        matches!(self.command, Command::Demo(_))
    }
}

/// Runs the parsed command.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve(args) => serve::run(&args),
        Command::Demo(args) => demo::run(&args).map(|()| ExitCode::SUCCESS),
        Command::Plugin(cmd) => plugin::run(cmd),
        Command::Deliveries(cmd) => deliveries::run(cmd),
        Command::Keys(cmd) => keys::run(cmd),
        Command::MigrateStore(args) => migrate::run(&args),
    }
}

/// Sets up logging to stderr; `RUST_LOG` wins over `-v`.
pub fn init_logging(format: LogFormat, verbose: u8, quiet: bool) {
    use tracing_subscriber::EnvFilter;
    let default = match verbose {
        0 if quiet => "warn",
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    // Colour only for a terminal: a log file or a journal gets plain text.
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr()) && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(colour);
    // A second init (tests calling in) is harmless; ignore it.
    let _ = match format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
