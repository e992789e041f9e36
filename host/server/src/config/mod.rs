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

use runhook_core::model::alert::AlertDefinition;
use runhook_core::model::{AlertId, RuleDefinition, RuleId};

mod settings;

use settings::{Raw, SETTINGS};

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
    /// Alerts from the config file (`[[alerts]]`), applied at start.
    pub alerts: Vec<ConfigAlert>,
    /// The Postgres database every replica shares (`[store] url`,
    /// `RUNHOOK_DATABASE_URL`, `--database`); the embedded SQLite store in
    /// the data directory when unset.
    pub database: Option<DatabaseUrl>,
    /// How long a replica's lease on a rule (or on the cluster's periodic
    /// work) lasts without renewal: a dead replica's rules move to the
    /// others about this long after it died.
    pub lease: Duration,
}

/// A database URL (`postgres://user:password@host/db`). Its `Debug` hides
/// it: it may carry a password, and configurations get logged.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    /// A `postgres://` or `postgresql://` URL, or why it is not one.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if !(text.starts_with("postgres://") || text.starts_with("postgresql://")) {
            return Err("must be a postgres:// URL (leave it unset for the embedded store)".into());
        }
        Ok(Self(text.to_string()))
    }

    /// The URL, to connect with.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DatabaseUrl(..)")
    }
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
    /// The most bytes of JSON a run's inputs (or outputs) carry inline in
    /// a webhook payload; larger ones go by a signed link (0: always inline).
    pub max_inline_io_bytes: usize,
    /// How long such a link works.
    pub io_link_lifetime: Duration,
    /// Where rules' PagerDuty `alerts` are sent: PagerDuty's Events API v2
    /// endpoint, or a relay (a proxy, a test receiver).
    pub pagerduty_events_url: String,
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
                max_inline_io_bytes: 0,
                io_link_lifetime: Duration::ZERO,
                pagerduty_events_url: String::new(),
            },
            secret_key: None,
            secret_key_file: None,
            rules: Vec::new(),
            alerts: Vec::new(),
            database: None,
            lease: Duration::ZERO,
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

/// Reads an array of tables (`[[rules]]`, `[[alerts]]`) with `from_table`;
/// an error names the entry by its position and display name.
fn entries<T>(
    value: toml::Value,
    key: &str,
    from_table: fn(toml::Table) -> Result<T, String>,
) -> Result<Vec<T>, String> {
    let toml::Value::Array(items) = value else {
        return Err(format!("`{key}` must be an array of tables ([[{key}]])"));
    };
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            let toml::Value::Table(table) = item else {
                return Err(format!("{key}[{i}]: expected a table"));
            };
            let name = table.get("display_name").and_then(toml::Value::as_str).unwrap_or("?").to_string();
            from_table(table).map_err(|e| format!("{key}[{i}] ({name}): {e}"))
        })
        .collect()
}

/// An alert from the config file: applied at start like an API create, or
/// an update when its definition changed (its state is kept).
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigAlert {
    /// Its `id`, or one derived from its display name.
    pub id: AlertId,
    /// What it says.
    pub definition: AlertDefinition,
}

impl ConfigAlert {
    /// Reads `[[alerts]]` entry `table`: an optional `id` (a UUID) and the
    /// alerts API's fields, nothing else.
    fn from_table(table: toml::Table) -> Result<Self, String> {
        let mut map = match serde_json::to_value(table) {
            Ok(serde_json::Value::Object(map)) => map,
            Ok(_) => return Err("expected a table".into()),
            Err(e) => return Err(e.to_string()),
        };
        let id = map.remove("id");
        let definition = AlertDefinition::from_value(serde_json::Value::Object(map))?;
        let id = match id {
            Some(serde_json::Value::String(s)) => s.parse().map_err(|_| format!("id {s:?} is not a UUID"))?,
            Some(_) => return Err("id must be a UUID string".into()),
            None => {
                let name = definition.display_name.as_deref().ok_or("display_name is required")?;
                AlertId(uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, format!("runhook-alert:{name}").as_bytes()))
            }
        };
        Ok(Self { id, definition })
    }
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

/// Values given on the command line, which win over everything else.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    /// `--listen`.
    pub listen: Option<SocketAddr>,
    /// `--data-dir`.
    pub data_dir: Option<PathBuf>,
    /// `--database`.
    pub database: Option<String>,
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
        if let Some(url) = &overrides.database {
            config.database = Some(DatabaseUrl::parse(url).map_err(|message| ConfigError::Invalid {
                key: "store.url".into(),
                source_name: "flag --database".into(),
                message,
            })?);
        }
        config.check("environment or flags")?;
        Ok(config)
    }

    /// Applies the file at `path`: every key must be a setting's (or `rules`, `alerts`).
    fn apply_file(&mut self, path: &Path) -> Result<(), ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.into(), source })?;
        let parse = |message: String| ConfigError::Parse { path: path.into(), message };
        let mut table: toml::Table = toml::from_str(&text).map_err(|e| parse(e.to_string()))?;
        let origin = format!("file {}", path.display());
        if let Some(rules) = table.remove("rules") {
            self.rules = entries(rules, "rules", ConfigRule::from_table).map_err(parse)?;
        }
        if let Some(alerts) = table.remove("alerts") {
            self.alerts = entries(alerts, "alerts", ConfigAlert::from_table).map_err(parse)?;
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
        // Replicas on one database must agree on the keys: none may make
        // its own in a data directory the others do not see.
        if self.database.is_some() {
            if self.api_key.is_none() {
                return Err(invalid("api_key", "must be set on a shared database (every replica the same key)"));
            }
            if self.secret_key.is_none() && self.secret_key_file.is_none() {
                return Err(invalid(
                    "secret_key_file",
                    "on a shared database, set RUNHOOK_SECRET_KEY or a secret_key_file every replica mounts \
                     (base64 32-byte keys, e.g. from `openssl rand -base64 32`)",
                ));
            }
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
mod tests;
