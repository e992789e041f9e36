//! Service configuration: one TOML file, environment overrides, flags on top.
//!
//! Precedence, lowest first: built-in defaults < the `--config` file <
//! `RUNHOOK_*` environment variables < command-line flags. Everything is
//! validated once, in [`Config::load`]; an unknown key or a bad value is
//! refused with a message naming it. Modules receive their typed part.
//!
//! Each setting is declared once, as a row of `SETTINGS`: its key in the
//! file, its environment variable, its default, and how a value is read
//! and checked. The file, the environment and the defaults all go through
//! that row; checks between settings (a backoff below its cap, one limit
//! above another) are in `Config::check`. `runhook.example.toml`
//! documents every row (a test reads it).
//!
//! Layering: layer 0; imports nothing from the crate.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use runhook_core::model::{RuleDefinition, RuleId};

/// The validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Address the HTTP API listens on.
    pub listen: SocketAddr,
    /// Where the database, keys and caches live.
    pub data_dir: PathBuf,
    /// The API key clients must send as `x-api-key`; generated at first
    /// start and kept in the data directory when not configured.
    pub api_key: Option<String>,
    /// Request size limits.
    pub limits: Limits,
    /// The plugin host.
    pub plugins: PluginSettings,
    /// Webhook delivery: the retry policy, concurrency, allowed networks.
    pub delivery: DeliverySettings,
    /// The secret keys (base64, comma-separated, first current) from
    /// `RUNHOOK_SECRET_KEY`; when unset, keys live in `secret_key_file`.
    pub secret_key: Option<String>,
    /// The key file, by default `secret.key` in the data directory.
    pub secret_key_file: Option<PathBuf>,
    /// Rules defined in the file (`[[rules]]`), with the rules API's
    /// fields; applied at start (created, or updated to match).
    pub rules: Vec<ConfigRule>,
}

/// Plugin host settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginSettings {
    /// Rules may only name plugin files under this directory.
    pub dir: PathBuf,
    /// Largest plugin file read.
    pub max_file_bytes: u64,
    /// How often plugin files are checked for changes (hot reload).
    pub reload_interval: Duration,
    /// Granularity of call deadlines.
    pub epoch_tick: Duration,
    /// Plugin instances alive at once (pre-reserved slots).
    pub max_instances: u32,
}

impl Default for PluginSettings {
    /// Every plugin setting at its declared default (see `SETTINGS`).
    fn default() -> Self {
        Config::default().plugins
    }
}

/// Webhook delivery settings: the policy's numbers and where webhooks may go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliverySettings {
    /// One attempt's total deadline: connect, send, response headers.
    pub attempt_timeout: Duration,
    /// Retries after a transport failure (no response at all).
    pub transport_retries: u32,
    /// Retries after a 5xx response.
    pub server_error_retries: u32,
    /// The first retry's delay; doubled for each further retry, plus up to
    /// a quarter of random jitter.
    pub backoff: Duration,
    /// The longest delay before a retry, also the cap on `Retry-After`.
    pub max_backoff: Duration,
    /// Deliveries in flight at once.
    pub concurrency: usize,
    /// Deliveries in flight at once to one endpoint (scheme, host, port).
    pub per_endpoint_concurrency: usize,
    /// Networks webhooks may reach although they are not public (loopback,
    /// private, link-local ...). Empty: only public addresses.
    pub allow_networks: Vec<ipnet::IpNet>,
    /// Refuse plain `http://` targets (a URL's secret and the payload would
    /// cross the network in clear): rules are refused them when saved, and
    /// rows queued before fail as `forbidden`.
    pub require_https: bool,
    /// Days a finished delivery (its payload, headers and attempts) is kept
    /// after it was queued and finished; 0 keeps them forever. Pending ones
    /// are always kept.
    pub retention_days: u32,
    /// How often the worker looks for due deliveries when nothing woke it.
    /// Deliveries this process queues or redelivers wake it at once; the
    /// poll finds the rest (due after a restart, or queued by another
    /// process on the same database).
    pub poll_interval: Duration,
}

impl DeliverySettings {
    /// The defaults, with loopback allowed: for in-process tools (the demo,
    /// the benchmarks) whose receivers listen on loopback, which webhooks
    /// may not reach by default.
    pub fn loopback_allowed() -> Self {
        let loopback = ipnet::Ipv4Net::new(std::net::Ipv4Addr::LOCALHOST, 8).map(ipnet::IpNet::V4);
        Self { allow_networks: loopback.into_iter().collect(), ..Self::default() }
    }
}

impl Default for DeliverySettings {
    /// Every delivery setting at its declared default (see `SETTINGS`).
    fn default() -> Self {
        Config::default().delivery
    }
}

/// Request size limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest request body accepted, as sent (compressed or not).
    pub max_body_bytes: usize,
    /// Largest body after decompression (guards against compression bombs).
    pub max_decompressed_bytes: usize,
    /// How long a client has to send a request's headers, counted from when
    /// the connection is ready for one (so also the keep-alive idle time).
    pub header_timeout: Duration,
    /// Client connections served at once; one more is refused with a 503.
    pub max_connections: usize,
    /// Most items of one list in a request: ids in a query, query-string
    /// parameters.
    pub max_list_items: usize,
    /// Most runs (posts and patches) one ingest request may carry.
    pub max_runs_per_request: usize,
    /// How long evaluating a query's filters may take.
    pub request_timeout: Duration,
    /// Largest run (its JSON, or the sum of its multipart parts).
    pub max_run_bytes: usize,
    /// Most JSON values (and keys) one request may hold.
    pub max_json_values: usize,
}

impl Limits {
    /// The bounds request bodies are decoded within.
    pub fn wire(&self) -> runhook_wire::WireLimits {
        runhook_wire::WireLimits {
            max_decompressed_bytes: self.max_decompressed_bytes,
            max_run_bytes: self.max_run_bytes,
            max_json_values: self.max_json_values,
            max_runs_per_request: self.max_runs_per_request,
        }
    }
}

impl Default for Limits {
    /// Both limits at their declared defaults (see `SETTINGS`).
    fn default() -> Self {
        Config::default().limits
    }
}

impl Default for Config {
    /// Every setting at its declared default: the `default` of its row in
    /// `SETTINGS`, applied to a blank configuration.
    fn default() -> Self {
        let mut config = Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir: PathBuf::new(),
            api_key: None,
            limits: Limits {
                max_body_bytes: 0,
                max_decompressed_bytes: 0,
                header_timeout: Duration::ZERO,
                max_connections: 0,
                max_list_items: 0,
                max_runs_per_request: 0,
                request_timeout: Duration::ZERO,
                max_run_bytes: 0,
                max_json_values: 0,
            },
            plugins: PluginSettings {
                dir: PathBuf::new(),
                max_file_bytes: 0,
                reload_interval: Duration::ZERO,
                epoch_tick: Duration::ZERO,
                max_instances: 0,
            },
            delivery: DeliverySettings {
                attempt_timeout: Duration::ZERO,
                transport_retries: 0,
                server_error_retries: 0,
                backoff: Duration::ZERO,
                max_backoff: Duration::ZERO,
                concurrency: 0,
                per_endpoint_concurrency: 0,
                allow_networks: Vec::new(),
                require_https: false,
                retention_days: 0,
                poll_interval: Duration::ZERO,
            },
            secret_key: None,
            secret_key_file: None,
            rules: Vec::new(),
        };
        for setting in SETTINGS {
            // Every default is valid: `every_default_is_valid` checks it.
            let _ = (setting.apply)(&mut config, Raw::Text(setting.default));
        }
        config
    }
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML, or has an unknown key or a wrong type.
    #[error("config file {}: {message}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong, naming the key (from the TOML parser).
        message: String,
    },
    /// A value is out of range or malformed.
    #[error("config key `{key}` ({source_name}): {message}")]
    Invalid {
        /// The key, e.g. `limits.max_body_bytes`.
        key: String,
        /// Where the value came from: the file, or an environment variable.
        source_name: String,
        /// What is wrong.
        message: String,
    },
}

/// A rule of the config file: a definition (checked in full when applied,
/// as an API create is), and the id it keeps across restarts.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigRule {
    /// Its `id`, or one derived from its display name.
    pub id: RuleId,
    /// What it says.
    pub definition: RuleDefinition,
}

impl ConfigRule {
    /// Reads `[[rules]]` entry `table`: an optional `id` (a UUID) and the
    /// rules API's fields, nothing else.
    fn from_table(table: toml::Table) -> Result<Self, String> {
        let mut map = match serde_json::to_value(table) {
            Ok(serde_json::Value::Object(map)) => map,
            Ok(_) => return Err("expected a table".into()),
            Err(e) => return Err(e.to_string()),
        };
        let id = map.remove("id");
        let definition = RuleDefinition::from_map(map)?;
        let id = match id {
            Some(serde_json::Value::String(s)) => s.parse().map_err(|_| format!("id {s:?} is not a UUID"))?,
            Some(_) => return Err("id must be a UUID string".into()),
            None => {
                let name = definition.display_name.as_deref().ok_or("display_name is required")?;
                RuleId(uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, format!("runhook-rule:{name}").as_bytes()))
            }
        };
        Ok(Self { id, definition })
    }
}

/// A value for a setting, from the file or as text (the environment, a default).
#[derive(Debug, Clone, Copy)]
enum Raw<'a> {
    File(&'a toml::Value),
    Text(&'a str),
}

/// One setting, declared once.
struct Setting {
    /// Its key in the file, dotted (`delivery.attempt_timeout_ms`); `None`
    /// for a setting only the environment may give (a secret).
    key: Option<&'static str>,
    /// Its environment variable.
    env: &'static str,
    /// Its name in messages: the key, or the variable.
    name: &'static str,
    /// Its default, as text (empty: unset).
    default: &'static str,
    /// Reads and checks a value, and sets it.
    apply: fn(&mut Config, Raw<'_>) -> Result<(), String>,
}

macro_rules! setting {
    ($key:literal, $env:literal, $default:literal, $apply:expr) => {
        Setting { key: Some($key), env: $env, name: $key, default: $default, apply: $apply }
    };
    (env $env:literal, $default:literal, $apply:expr) => {
        Setting { key: None, env: $env, name: $env, default: $default, apply: $apply }
    };
}

/// Every setting: key, variable, default, check.
const SETTINGS: &[Setting] = &[
    setting!("listen", "RUNHOOK_LISTEN", "127.0.0.1:1984", |c, v| {
        let text = text(v)?;
        c.listen = text.trim().parse().map_err(|e| format!("{text:?} is not an address like 127.0.0.1:1984: {e}"))?;
        Ok(())
    }),
    setting!("data_dir", "RUNHOOK_DATA_DIR", "runhook-data", |c, v| {
        let dir = text(v)?;
        if dir.is_empty() {
            return Err("must not be empty".into());
        }
        c.data_dir = PathBuf::from(dir);
        Ok(())
    }),
    setting!("api_key", "RUNHOOK_API_KEY", "", |c, v| {
        let key = text(v)?;
        if !key.is_empty() && key.trim().len() < 16 {
            return Err("must be at least 16 characters".into());
        }
        c.api_key = Some(key).filter(|k| !k.is_empty());
        Ok(())
    }),
    setting!(env "RUNHOOK_SECRET_KEY", "", |c, v| {
        c.secret_key = Some(text(v)?).filter(|k| !k.is_empty());
        Ok(())
    }),
    setting!("secret_key_file", "RUNHOOK_SECRET_KEY_FILE", "", |c, v| {
        c.secret_key_file = Some(text(v)?).filter(|p| !p.is_empty()).map(PathBuf::from);
        Ok(())
    }),
    setting!("limits.max_body_bytes", "RUNHOOK_MAX_BODY_BYTES", "67108864", |c, v| {
        c.limits.max_body_bytes = number(v, 1024..=usize::MAX)?;
        Ok(())
    }),
    setting!("limits.max_decompressed_bytes", "RUNHOOK_MAX_DECOMPRESSED_BYTES", "268435456", |c, v| {
        c.limits.max_decompressed_bytes = number(v, 1024..=usize::MAX)?;
        Ok(())
    }),
    setting!("limits.max_run_bytes", "RUNHOOK_MAX_RUN_BYTES", "16777216", |c, v| {
        c.limits.max_run_bytes = number(v, 1024..=usize::MAX)?;
        Ok(())
    }),
    setting!("limits.max_json_values", "RUNHOOK_MAX_JSON_VALUES", "4000000", |c, v| {
        c.limits.max_json_values = number(v, 1000..=usize::MAX)?;
        Ok(())
    }),
    setting!("limits.header_timeout_ms", "RUNHOOK_HEADER_TIMEOUT_MS", "10000", |c, v| {
        c.limits.header_timeout = millis(v, 100..=3_600_000)?;
        Ok(())
    }),
    setting!("limits.max_connections", "RUNHOOK_MAX_CONNECTIONS", "1024", |c, v| {
        c.limits.max_connections = number(v, 1..=1_000_000)?;
        Ok(())
    }),
    setting!("limits.max_list_items", "RUNHOOK_MAX_LIST_ITEMS", "1000", |c, v| {
        c.limits.max_list_items = number(v, 1..=30_000)?;
        Ok(())
    }),
    setting!("limits.max_runs_per_request", "RUNHOOK_MAX_RUNS_PER_REQUEST", "10000", |c, v| {
        c.limits.max_runs_per_request = number(v, 1..=1_000_000)?;
        Ok(())
    }),
    setting!("limits.request_timeout_ms", "RUNHOOK_REQUEST_TIMEOUT_MS", "30000", |c, v| {
        c.limits.request_timeout = millis(v, 100..=3_600_000)?;
        Ok(())
    }),
    setting!("plugins.dir", "RUNHOOK_PLUGINS_DIR", "plugins", |c, v| {
        let dir = text(v)?;
        if dir.is_empty() {
            return Err("must not be empty".into());
        }
        c.plugins.dir = PathBuf::from(dir);
        Ok(())
    }),
    setting!("plugins.max_file_bytes", "RUNHOOK_PLUGIN_MAX_FILE_BYTES", "67108864", |c, v| {
        c.plugins.max_file_bytes = number(v, 1024..=u64::MAX)?;
        Ok(())
    }),
    setting!("plugins.reload_interval_ms", "RUNHOOK_PLUGIN_RELOAD_INTERVAL_MS", "1000", |c, v| {
        c.plugins.reload_interval = millis(v, 100..=60_000)?;
        Ok(())
    }),
    setting!("plugins.epoch_tick_ms", "RUNHOOK_PLUGIN_EPOCH_TICK_MS", "10", |c, v| {
        c.plugins.epoch_tick = millis(v, 1..=1000)?;
        Ok(())
    }),
    setting!("plugins.max_instances", "RUNHOOK_PLUGIN_MAX_INSTANCES", "256", |c, v| {
        c.plugins.max_instances = number(v, 1..=10_000)?;
        Ok(())
    }),
    setting!("delivery.attempt_timeout_ms", "RUNHOOK_DELIVERY_ATTEMPT_TIMEOUT_MS", "5000", |c, v| {
        c.delivery.attempt_timeout = millis(v, 100..=60_000)?;
        Ok(())
    }),
    setting!("delivery.transport_retries", "RUNHOOK_DELIVERY_TRANSPORT_RETRIES", "2", |c, v| {
        c.delivery.transport_retries = number(v, 0..=10)?;
        Ok(())
    }),
    setting!("delivery.server_error_retries", "RUNHOOK_DELIVERY_SERVER_ERROR_RETRIES", "2", |c, v| {
        c.delivery.server_error_retries = number(v, 0..=10)?;
        Ok(())
    }),
    setting!("delivery.backoff_ms", "RUNHOOK_DELIVERY_BACKOFF_MS", "500", |c, v| {
        c.delivery.backoff = millis(v, 1..=86_400_000)?;
        Ok(())
    }),
    setting!("delivery.max_backoff_ms", "RUNHOOK_DELIVERY_MAX_BACKOFF_MS", "60000", |c, v| {
        c.delivery.max_backoff = millis(v, 1..=86_400_000)?;
        Ok(())
    }),
    setting!("delivery.concurrency", "RUNHOOK_DELIVERY_CONCURRENCY", "64", |c, v| {
        c.delivery.concurrency = number(v, 1..=10_000)?;
        Ok(())
    }),
    setting!("delivery.per_endpoint_concurrency", "RUNHOOK_DELIVERY_PER_ENDPOINT_CONCURRENCY", "8", |c, v| {
        c.delivery.per_endpoint_concurrency = number(v, 1..=10_000)?;
        Ok(())
    }),
    setting!("delivery.allow_networks", "RUNHOOK_ALLOW_NETWORKS", "", |c, v| {
        c.delivery.allow_networks = networks(v)?;
        Ok(())
    }),
    setting!("delivery.require_https", "RUNHOOK_DELIVERY_REQUIRE_HTTPS", "false", |c, v| {
        c.delivery.require_https = boolean(v)?;
        Ok(())
    }),
    setting!("delivery.retention_days", "RUNHOOK_DELIVERY_RETENTION_DAYS", "30", |c, v| {
        c.delivery.retention_days = number(v, 0..=36_500).map_err(|e| format!("{e} (0 keeps deliveries forever)"))?;
        Ok(())
    }),
    setting!("delivery.poll_interval_ms", "RUNHOOK_DELIVERY_POLL_INTERVAL_MS", "100", |c, v| {
        c.delivery.poll_interval = millis(v, 10..=3_600_000).map_err(|e| format!("{e} (an hour)"))?;
        Ok(())
    }),
];

fn text(v: Raw<'_>) -> Result<String, String> {
    match v {
        Raw::Text(s) => Ok(s.to_string()),
        Raw::File(toml::Value::String(s)) => Ok(s.clone()),
        Raw::File(other) => Err(format!("expected a string, got {}", other.type_str())),
    }
}

fn number<T>(v: Raw<'_>, range: std::ops::RangeInclusive<T>) -> Result<T, String>
where
    T: TryFrom<i64> + std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
    <T as std::str::FromStr>::Err: std::fmt::Display,
{
    let n: T = match v {
        Raw::Text(s) => s.trim().parse().map_err(|e| format!("{s:?} is not a whole number: {e}"))?,
        Raw::File(toml::Value::Integer(i)) => T::try_from(*i).map_err(|_| format!("{i} is out of range"))?,
        Raw::File(other) => return Err(format!("expected a whole number, got {}", other.type_str())),
    };
    if !range.contains(&n) {
        return Err(format!("must be between {} and {}, got {n}", range.start(), range.end()));
    }
    Ok(n)
}

fn millis(v: Raw<'_>, range: std::ops::RangeInclusive<u64>) -> Result<Duration, String> {
    number(v, range).map(Duration::from_millis)
}

fn boolean(v: Raw<'_>) -> Result<bool, String> {
    match v {
        Raw::File(toml::Value::Boolean(b)) => Ok(*b),
        Raw::File(other) => Err(format!("expected true or false, got {}", other.type_str())),
        Raw::Text(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(true),
            "false" | "0" | "no" | "off" | "" => Ok(false),
            _ => Err(format!("{s:?} is not a boolean (true or false)")),
        },
    }
}

/// Networks as a list (file) or comma-separated (text); a bare address is
/// a network of one.
fn networks(v: Raw<'_>) -> Result<Vec<ipnet::IpNet>, String> {
    let items: Vec<String> = match v {
        Raw::Text(s) => s.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect(),
        Raw::File(toml::Value::Array(items)) => items.iter().map(|i| text(Raw::File(i))).collect::<Result<_, _>>()?,
        Raw::File(other) => return Err(format!("expected a list of networks, got {}", other.type_str())),
    };
    items
        .iter()
        .map(|n| {
            let n = n.trim();
            n.parse::<ipnet::IpNet>()
                .or_else(|_| n.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| format!("{n:?} is not a network like 10.0.0.0/8 or an address"))
        })
        .collect()
}

/// Values given on the command line, which win over everything else.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    /// `--listen`.
    pub listen: Option<SocketAddr>,
    /// `--data-dir`.
    pub data_dir: Option<PathBuf>,
}

impl Config {
    /// Loads and validates: defaults, then `file`, then the environment
    /// (read through `env`, so tests need not touch the process's), then
    /// `overrides`.
    pub fn load(
        file: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
        overrides: &Overrides,
    ) -> Result<Self, ConfigError> {
        let mut config = Config::default();
        if let Some(path) = file {
            config.apply_file(path)?;
        }
        for setting in SETTINGS {
            if let Some(value) = env(setting.env) {
                (setting.apply)(&mut config, Raw::Text(&value)).map_err(|message| ConfigError::Invalid {
                    key: setting.name.into(),
                    source_name: format!("env {}", setting.env),
                    message,
                })?;
            }
        }
        if let Some(listen) = overrides.listen {
            config.listen = listen;
        }
        if let Some(dir) = &overrides.data_dir {
            config.data_dir = dir.clone();
        }
        config.check("environment or flags")?;
        Ok(config)
    }

    /// Applies the file at `path`: every key must be a setting's (or `rules`).
    fn apply_file(&mut self, path: &Path) -> Result<(), ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.into(), source })?;
        let parse = |message: String| ConfigError::Parse { path: path.into(), message };
        let mut table: toml::Table = toml::from_str(&text).map_err(|e| parse(e.to_string()))?;
        let origin = format!("file {}", path.display());
        if let Some(rules) = table.remove("rules") {
            let toml::Value::Array(rules) = rules else {
                return Err(parse("`rules` must be an array of tables ([[rules]])".into()));
            };
            self.rules = rules
                .into_iter()
                .enumerate()
                .map(|(i, rule)| {
                    let toml::Value::Table(table) = rule else {
                        return Err(parse(format!("rules[{i}]: expected a table")));
                    };
                    let name = table.get("display_name").and_then(toml::Value::as_str).unwrap_or("?").to_string();
                    ConfigRule::from_table(table).map_err(|e| parse(format!("rules[{i}] ({name}): {e}")))
                })
                .collect::<Result<_, _>>()?;
        }
        let mut leaves = Vec::new();
        flatten("", &table, &mut leaves);
        for (key, value) in leaves {
            let Some(setting) = SETTINGS.iter().find(|s| s.key == Some(key.as_str())) else {
                return Err(parse(format!("unknown key `{key}`")));
            };
            (setting.apply)(self, Raw::File(value)).map_err(|message| ConfigError::Invalid {
                key: key.clone(),
                source_name: origin.clone(),
                message,
            })?;
        }
        self.check(&origin)
    }

    /// The checks between settings (each setting's own range is checked
    /// where it is read).
    fn check(&self, origin: &str) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: &str| ConfigError::Invalid {
            key: key.into(),
            source_name: origin.into(),
            message: message.into(),
        };
        if self.limits.max_decompressed_bytes < self.limits.max_body_bytes {
            return Err(invalid("limits.max_decompressed_bytes", "must be at least limits.max_body_bytes"));
        }
        let d = &self.delivery;
        if d.backoff > d.max_backoff {
            return Err(invalid("delivery.backoff_ms", "must be at most delivery.max_backoff_ms"));
        }
        if d.per_endpoint_concurrency > d.concurrency {
            return Err(invalid("delivery.per_endpoint_concurrency", "must be at most delivery.concurrency"));
        }
        Ok(())
    }
}

/// The leaves of a TOML table as dotted keys (`delivery.backoff_ms`);
/// tables nest, values (arrays included) are leaves.
fn flatten<'a>(prefix: &str, table: &'a toml::Table, out: &mut Vec<(String, &'a toml::Value)>) {
    for (key, value) in table {
        let path = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
        match value {
            toml::Value::Table(inner) => flatten(&path, inner, out),
            leaf => out.push((path, leaf)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(toml: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("runhook.toml");
        std::fs::write(&path, toml).unwrap();
        let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::load(Some(&path), |k| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()), &Overrides::default())
    }

    /// Every setting appears in the example file, under its key and with
    /// its environment variable, and the file loads.
    #[test]
    fn the_example_file_is_valid_and_documents_every_setting() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../runhook/runhook.example.toml");
        let text = std::fs::read_to_string(path).unwrap();
        for setting in SETTINGS {
            if let Some(key) = setting.key {
                let (section, name) = key.rsplit_once('.').unwrap_or(("", key));
                assert!(text.contains(&format!("{name} =")), "runhook.example.toml does not document {key}");
                if !section.is_empty() {
                    assert!(text.contains(&format!("[{section}]")), "runhook.example.toml has no [{section}]");
                }
            }
            assert!(
                text.contains(setting.env),
                "runhook.example.toml does not name {} ({})",
                setting.env,
                setting.name
            );
        }
        assert!(text.contains("[[rules]]"));
        let c = Config::load(Some(std::path::Path::new(path)), |_| None, &Overrides::default()).unwrap();
        assert_eq!(c.rules.len(), 1);
    }

    /// Every declared default reads back as a valid value, and a blank
    /// file, a blank environment give exactly the defaults.
    #[test]
    fn every_default_is_valid() {
        let mut config = Config::default();
        for setting in SETTINGS {
            (setting.apply)(&mut config, Raw::Text(setting.default))
                .unwrap_or_else(|e| panic!("the default of {} is invalid: {e}", setting.name));
            assert!(setting.env.starts_with("RUNHOOK_"), "{}", setting.env);
        }
        config.check("defaults").unwrap();
        assert_eq!(load("", &[]).unwrap(), Config::default());
        assert_eq!(Config::default().delivery.attempt_timeout, Duration::from_secs(5));
    }

    /// `[[rules]]` are read as rule definitions when the file loads: an
    /// unknown field or a wrong type is refused then, naming the rule.
    #[test]
    fn config_rules_are_typed() {
        let rule = "[[rules]]\ndisplay_name = \"r\"\nsession_name = \"p\"\n";
        let c = load(rule, &[]).unwrap();
        assert_eq!(c.rules[0].definition.display_name.as_deref(), Some("r"));
        assert_eq!(c.rules[0].id, load(rule, &[]).unwrap().rules[0].id, "the derived id is stable");
        let err = load(&format!("{rule}colour = \"red\"\n"), &[]).unwrap_err().to_string();
        assert!(err.contains("rules[0] (r)") && err.contains("colour"), "{err}");
        let err = load(&format!("{rule}sampling_rate = \"half\"\n"), &[]).unwrap_err().to_string();
        assert!(err.contains("rules[0] (r)") && err.contains("sampling_rate"), "{err}");
        let err = load(&format!("{rule}id = \"nope\"\n"), &[]).unwrap_err().to_string();
        assert!(err.contains("not a UUID"), "{err}");
    }

    /// The settings that had no variable before have one now.
    #[test]
    fn every_setting_has_a_variable() {
        let c = load(
            "",
            &[
                ("RUNHOOK_DELIVERY_TRANSPORT_RETRIES", "4"),
                ("RUNHOOK_DELIVERY_SERVER_ERROR_RETRIES", "5"),
                ("RUNHOOK_DELIVERY_MAX_BACKOFF_MS", "9000"),
                ("RUNHOOK_SECRET_KEY_FILE", "/etc/runhook/secret.key"),
            ],
        )
        .unwrap();
        assert_eq!((c.delivery.transport_retries, c.delivery.server_error_retries), (4, 5));
        assert_eq!(c.delivery.max_backoff, Duration::from_secs(9));
        assert_eq!(c.secret_key_file.as_deref(), Some(std::path::Path::new("/etc/runhook/secret.key")));
        let err = load("", &[("RUNHOOK_DELIVERY_TRANSPORT_RETRIES", "11")]).unwrap_err().to_string();
        assert!(
            err.contains("delivery.transport_retries") && err.contains("RUNHOOK_DELIVERY_TRANSPORT_RETRIES"),
            "{err}"
        );
        let err = load("[delivery]\nbackoff_ms = 90000\n", &[]).unwrap_err().to_string();
        assert!(err.contains("delivery.backoff_ms"), "{err}");
    }

    #[test]
    fn layers_file_then_env() {
        let c = load(
            "listen = \"0.0.0.0:9000\"\n[limits]\nmax_body_bytes = 2048\n",
            &[("RUNHOOK_LISTEN", "127.0.0.1:9001")],
        )
        .unwrap();
        assert_eq!(c.listen, "127.0.0.1:9001".parse().unwrap());
        assert_eq!(c.limits.max_body_bytes, 2048);
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_key() {
        let err = load("lisen = \"x\"\n", &[]).unwrap_err().to_string();
        assert!(err.contains("lisen"), "{err}");
        let err = load("listen = \"nowhere\"\n", &[]).unwrap_err().to_string();
        assert!(err.contains("`listen`"), "{err}");
        let err = load("[limits]\nmax_body_bytes = \"big\"\n", &[]).unwrap_err().to_string();
        assert!(err.contains("max_body_bytes"), "{err}");
        let err = load("", &[("RUNHOOK_MAX_BODY_BYTES", "lots")]).unwrap_err().to_string();
        assert!(err.contains("RUNHOOK_MAX_BODY_BYTES"), "{err}");
        let err = load("", &[("RUNHOOK_PLUGIN_EPOCH_TICK_MS", "0")]).unwrap_err().to_string();
        assert!(err.contains("plugins.epoch_tick_ms"), "{err}");
        let c = load("[plugins]\nmax_instances = 8\n", &[("RUNHOOK_PLUGIN_MAX_INSTANCES", "16")]).unwrap();
        assert_eq!(c.plugins.max_instances, 16);
        let c = load("[delivery]\nallow_networks = [\"10.0.0.0/8\", \"::1\"]\n", &[]).unwrap();
        assert_eq!(c.delivery.allow_networks.len(), 2);
        let c = load("", &[("RUNHOOK_ALLOW_NETWORKS", "127.0.0.0/8, 192.168.1.7")]).unwrap();
        assert_eq!(c.delivery.allow_networks[1].to_string(), "192.168.1.7/32");
        let err = load("", &[("RUNHOOK_ALLOW_NETWORKS", "10.0.0.0/33")]).unwrap_err().to_string();
        assert!(err.contains("RUNHOOK_ALLOW_NETWORKS") && err.contains("10.0.0.0/33"), "{err}");
        let err = load("[delivery]\nbackoff_ms = 0\n", &[]).unwrap_err().to_string();
        assert!(err.contains("delivery.backoff_ms"), "{err}");
        let err = load("api_key = \"short\"\n", &[]).unwrap_err().to_string();
        assert!(err.contains("api_key"), "{err}");
    }

    #[test]
    fn delivery_retention_from_file_and_env() {
        assert_eq!(load("", &[]).unwrap().delivery.retention_days, 30);
        let c = load("[delivery]\nretention_days = 0\n", &[]).unwrap();
        assert_eq!(c.delivery.retention_days, 0);
        let c = load("[delivery]\nretention_days = 7\n", &[("RUNHOOK_DELIVERY_RETENTION_DAYS", "90")]).unwrap();
        assert_eq!(c.delivery.retention_days, 90);
        let err = load("[delivery]\nretention_days = 99999\n", &[]).unwrap_err().to_string();
        assert!(err.contains("delivery.retention_days"), "{err}");
        let err = load("", &[("RUNHOOK_DELIVERY_RETENTION_DAYS", "a week")]).unwrap_err().to_string();
        assert!(err.contains("RUNHOOK_DELIVERY_RETENTION_DAYS"), "{err}");
    }

    #[test]
    fn require_https_from_file_and_env() {
        assert!(!load("", &[]).unwrap().delivery.require_https);
        assert!(load("[delivery]\nrequire_https = true\n", &[]).unwrap().delivery.require_https);
        let c = load("[delivery]\nrequire_https = true\n", &[("RUNHOOK_DELIVERY_REQUIRE_HTTPS", "false")]).unwrap();
        assert!(!c.delivery.require_https);
        assert!(load("", &[("RUNHOOK_DELIVERY_REQUIRE_HTTPS", "1")]).unwrap().delivery.require_https);
        let err = load("", &[("RUNHOOK_DELIVERY_REQUIRE_HTTPS", "maybe")]).unwrap_err().to_string();
        assert!(err.contains("delivery.require_https") && err.contains("maybe"), "{err}");
        let err = load("[delivery]\nrequire_https = \"yes\"\n", &[]).unwrap_err().to_string();
        assert!(err.contains("require_https"), "{err}");
    }

    #[test]
    fn delivery_poll_interval_from_file_and_env() {
        assert_eq!(load("", &[]).unwrap().delivery.poll_interval, Duration::from_millis(100));
        let c = load("[delivery]\npoll_interval_ms = 2000\n", &[]).unwrap();
        assert_eq!(c.delivery.poll_interval, Duration::from_secs(2));
        let c = load("", &[("RUNHOOK_DELIVERY_POLL_INTERVAL_MS", "250")]).unwrap();
        assert_eq!(c.delivery.poll_interval, Duration::from_millis(250));
        for bad in ["0", "3600001"] {
            let err = load("", &[("RUNHOOK_DELIVERY_POLL_INTERVAL_MS", bad)]).unwrap_err().to_string();
            assert!(err.contains("delivery.poll_interval_ms"), "{err}");
        }
    }
}
