//! Service configuration: one TOML file, environment overrides, flags on top.
//!
//! Precedence, lowest first: built-in defaults < the `--config` file <
//! `RUNHOOK_*` environment variables < command-line flags. Everything is
//! validated once, in [`Config::load`]; an unknown key or a bad value is
//! refused with a message naming it. Modules receive their typed part.
//!
//! Layering: layer 0; imports nothing from the crate.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

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
    /// Rules defined in the file (`[[rules]]`), in the rules API's JSON
    /// shape; applied at start (created, or updated to match).
    pub rules: Vec<serde_json::Value>,
}

/// Plugin host settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PluginSettings {
    /// How often plugin files are checked for changes (hot reload).
    pub reload_interval: Duration,
    /// Granularity of call deadlines.
    pub epoch_tick: Duration,
    /// Plugin instances alive at once (pre-reserved slots).
    pub max_instances: u32,
}

impl Default for PluginSettings {
    fn default() -> Self {
        Self { reload_interval: Duration::from_secs(1), epoch_tick: Duration::from_millis(10), max_instances: 256 }
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
    fn default() -> Self {
        Self {
            attempt_timeout: Duration::from_secs(5),
            transport_retries: 2,
            server_error_retries: 2,
            backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(60),
            concurrency: 64,
            per_endpoint_concurrency: 8,
            allow_networks: Vec::new(),
            require_https: false,
            retention_days: 30,
            poll_interval: Duration::from_millis(100),
        }
    }
}

/// Request size limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest request body accepted, as sent (compressed or not).
    pub max_body_bytes: usize,
    /// Largest body after decompression (guards against compression bombs).
    pub max_decompressed_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self { max_body_bytes: 64 << 20, max_decompressed_bytes: 256 << 20 }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 1984)),
            data_dir: PathBuf::from("runhook-data"),
            api_key: None,
            limits: Limits::default(),
            plugins: PluginSettings::default(),
            delivery: DeliverySettings::default(),
            secret_key: None,
            secret_key_file: None,
            rules: Vec::new(),
        }
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

/// The file's shape; every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    data_dir: Option<PathBuf>,
    api_key: Option<String>,
    #[serde(default)]
    limits: FileLimits,
    #[serde(default)]
    plugins: FilePlugins,
    #[serde(default)]
    delivery: FileDelivery,
    secret_key_file: Option<PathBuf>,
    #[serde(default)]
    rules: Vec<serde_json::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDelivery {
    attempt_timeout_ms: Option<u64>,
    transport_retries: Option<u32>,
    server_error_retries: Option<u32>,
    backoff_ms: Option<u64>,
    max_backoff_ms: Option<u64>,
    concurrency: Option<usize>,
    per_endpoint_concurrency: Option<usize>,
    allow_networks: Option<Vec<String>>,
    require_https: Option<bool>,
    retention_days: Option<u32>,
    poll_interval_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FilePlugins {
    reload_interval_ms: Option<u64>,
    epoch_tick_ms: Option<u64>,
    max_instances: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileLimits {
    max_body_bytes: Option<usize>,
    max_decompressed_bytes: Option<usize>,
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
            let text =
                std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.into(), source })?;
            let parsed: FileConfig =
                toml::from_str(&text).map_err(|e| ConfigError::Parse { path: path.into(), message: e.to_string() })?;
            let origin = format!("file {}", path.display());
            if let Some(listen) = parsed.listen {
                config.listen = parse_addr("listen", &origin, &listen)?;
            }
            if let Some(dir) = parsed.data_dir {
                config.data_dir = dir;
            }
            config.api_key = parsed.api_key;
            config.rules = parsed.rules;
            set_ms(&mut config.plugins.reload_interval, parsed.plugins.reload_interval_ms);
            set_ms(&mut config.plugins.epoch_tick, parsed.plugins.epoch_tick_ms);
            if let Some(n) = parsed.plugins.max_instances {
                config.plugins.max_instances = n;
            }
            if let Some(v) = parsed.limits.max_body_bytes {
                config.limits.max_body_bytes = v;
            }
            if let Some(v) = parsed.limits.max_decompressed_bytes {
                config.limits.max_decompressed_bytes = v;
            }
            let d = parsed.delivery;
            let delivery = &mut config.delivery;
            set_ms(&mut delivery.attempt_timeout, d.attempt_timeout_ms);
            set_ms(&mut delivery.backoff, d.backoff_ms);
            set_ms(&mut delivery.max_backoff, d.max_backoff_ms);
            set_ms(&mut delivery.poll_interval, d.poll_interval_ms);
            delivery.transport_retries = d.transport_retries.unwrap_or(delivery.transport_retries);
            delivery.server_error_retries = d.server_error_retries.unwrap_or(delivery.server_error_retries);
            delivery.concurrency = d.concurrency.unwrap_or(delivery.concurrency);
            delivery.per_endpoint_concurrency = d.per_endpoint_concurrency.unwrap_or(delivery.per_endpoint_concurrency);
            delivery.retention_days = d.retention_days.unwrap_or(delivery.retention_days);
            delivery.require_https = d.require_https.unwrap_or(delivery.require_https);
            if let Some(nets) = d.allow_networks {
                delivery.allow_networks = parse_networks(&origin, nets.iter().map(String::as_str))?;
            }
            if parsed.secret_key_file.is_some() {
                config.secret_key_file = parsed.secret_key_file;
            }
            config.validate(&origin)?;
        }
        if let Some(v) = env("RUNHOOK_LISTEN") {
            config.listen = parse_addr("listen", "env RUNHOOK_LISTEN", &v)?;
        }
        if let Some(v) = env("RUNHOOK_DATA_DIR") {
            config.data_dir = PathBuf::from(v);
        }
        if let Some(v) = env("RUNHOOK_API_KEY") {
            config.api_key = Some(v);
        }
        if let Some(n) = env_number(&env, "limits.max_body_bytes", "RUNHOOK_MAX_BODY_BYTES")? {
            config.limits.max_body_bytes = n;
        }
        if let Some(n) = env_number(&env, "limits.max_decompressed_bytes", "RUNHOOK_MAX_DECOMPRESSED_BYTES")? {
            config.limits.max_decompressed_bytes = n;
        }
        let p = &mut config.plugins;
        set_ms(
            &mut p.reload_interval,
            env_number(&env, "plugins.reload_interval_ms", "RUNHOOK_PLUGIN_RELOAD_INTERVAL_MS")?,
        );
        set_ms(&mut p.epoch_tick, env_number(&env, "plugins.epoch_tick_ms", "RUNHOOK_PLUGIN_EPOCH_TICK_MS")?);
        if let Some(n) = env_number(&env, "plugins.max_instances", "RUNHOOK_PLUGIN_MAX_INSTANCES")? {
            config.plugins.max_instances = n;
        }
        let d = &mut config.delivery;
        set_ms(
            &mut d.attempt_timeout,
            env_number(&env, "delivery.attempt_timeout_ms", "RUNHOOK_DELIVERY_ATTEMPT_TIMEOUT_MS")?,
        );
        set_ms(&mut d.backoff, env_number(&env, "delivery.backoff_ms", "RUNHOOK_DELIVERY_BACKOFF_MS")?);
        set_ms(
            &mut d.poll_interval,
            env_number(&env, "delivery.poll_interval_ms", "RUNHOOK_DELIVERY_POLL_INTERVAL_MS")?,
        );
        if let Some(n) = env_number(&env, "delivery.concurrency", "RUNHOOK_DELIVERY_CONCURRENCY")? {
            d.concurrency = n;
        }
        if let Some(n) =
            env_number(&env, "delivery.per_endpoint_concurrency", "RUNHOOK_DELIVERY_PER_ENDPOINT_CONCURRENCY")?
        {
            d.per_endpoint_concurrency = n;
        }
        if let Some(n) = env_number(&env, "delivery.retention_days", "RUNHOOK_DELIVERY_RETENTION_DAYS")? {
            d.retention_days = n;
        }
        if let Some(v) = env("RUNHOOK_DELIVERY_REQUIRE_HTTPS") {
            d.require_https = parse_bool("delivery.require_https", "env RUNHOOK_DELIVERY_REQUIRE_HTTPS", &v)?;
        }
        if let Some(v) = env("RUNHOOK_ALLOW_NETWORKS") {
            d.allow_networks =
                parse_networks("env RUNHOOK_ALLOW_NETWORKS", v.split(',').filter(|s| !s.trim().is_empty()))?;
        }
        if let Some(v) = env("RUNHOOK_SECRET_KEY") {
            config.secret_key = Some(v);
        }
        if let Some(listen) = overrides.listen {
            config.listen = listen;
        }
        if let Some(dir) = &overrides.data_dir {
            config.data_dir = dir.clone();
        }
        config.validate("environment or flags")?;
        Ok(config)
    }

    fn validate(&self, origin: &str) -> Result<(), ConfigError> {
        let invalid =
            |key: &str, message: String| ConfigError::Invalid { key: key.into(), source_name: origin.into(), message };
        if let Some(key) = &self.api_key
            && key.trim().len() < 16
        {
            return Err(invalid("api_key", "must be at least 16 characters".into()));
        }
        if self.limits.max_body_bytes < 1024 {
            return Err(invalid(
                "limits.max_body_bytes",
                format!("{} is below the minimum of 1024", self.limits.max_body_bytes),
            ));
        }
        if self.limits.max_decompressed_bytes < self.limits.max_body_bytes {
            return Err(invalid("limits.max_decompressed_bytes", "must be at least limits.max_body_bytes".into()));
        }
        let p = &self.plugins;
        if !(100..=60_000).contains(&p.reload_interval.as_millis()) {
            return Err(invalid("plugins.reload_interval_ms", "must be between 100 and 60000".into()));
        }
        if !(1..=1000).contains(&p.epoch_tick.as_millis()) {
            return Err(invalid("plugins.epoch_tick_ms", "must be between 1 and 1000".into()));
        }
        if !(1..=10_000).contains(&p.max_instances) {
            return Err(invalid("plugins.max_instances", "must be between 1 and 10000".into()));
        }
        let d = &self.delivery;
        if !(100..=60_000).contains(&d.attempt_timeout.as_millis()) {
            return Err(invalid("delivery.attempt_timeout_ms", "must be between 100 and 60000".into()));
        }
        if d.transport_retries > 10 || d.server_error_retries > 10 {
            return Err(invalid("delivery.transport_retries / server_error_retries", "must be at most 10".into()));
        }
        if d.backoff.is_zero() || d.backoff > d.max_backoff || d.max_backoff > Duration::from_secs(24 * 3600) {
            return Err(invalid(
                "delivery.backoff_ms",
                "must be above 0 and at most delivery.max_backoff_ms (itself at most a day)".into(),
            ));
        }
        if !(1..=10_000).contains(&d.concurrency) || !(1..=d.concurrency).contains(&d.per_endpoint_concurrency) {
            return Err(invalid(
                "delivery.concurrency / per_endpoint_concurrency",
                "concurrency must be between 1 and 10000, per_endpoint_concurrency between 1 and concurrency".into(),
            ));
        }
        if !(10..=3_600_000).contains(&d.poll_interval.as_millis()) {
            return Err(invalid("delivery.poll_interval_ms", "must be between 10 and 3600000 (an hour)".into()));
        }
        if d.retention_days > 36_500 {
            return Err(invalid(
                "delivery.retention_days",
                "must be at most 36500 (0 keeps deliveries forever)".into(),
            ));
        }
        if self.data_dir.as_os_str().is_empty() {
            return Err(invalid("data_dir", "must not be empty".into()));
        }
        Ok(())
    }
}

/// A whole-number environment override of `key`, if `var` is set.
fn env_number<T: std::str::FromStr>(
    env: &impl Fn(&str) -> Option<String>,
    key: &str,
    var: &str,
) -> Result<Option<T>, ConfigError>
where
    T::Err: std::fmt::Display,
{
    env(var)
        .map(|v| {
            v.trim().parse::<T>().map_err(|e| ConfigError::Invalid {
                key: key.into(),
                source_name: format!("env {var}"),
                message: format!("{v:?} is not a whole number: {e}"),
            })
        })
        .transpose()
}

fn set_ms(target: &mut Duration, ms: Option<u64>) {
    if let Some(ms) = ms {
        *target = Duration::from_millis(ms);
    }
}

fn parse_networks<'a>(origin: &str, nets: impl Iterator<Item = &'a str>) -> Result<Vec<ipnet::IpNet>, ConfigError> {
    nets.map(|n| {
        let n = n.trim();
        // A bare address is a network of one.
        n.parse::<ipnet::IpNet>().or_else(|_| n.parse::<std::net::IpAddr>().map(ipnet::IpNet::from)).map_err(|_| {
            ConfigError::Invalid {
                key: "delivery.allow_networks".into(),
                source_name: origin.into(),
                message: format!("{n:?} is not a network like 10.0.0.0/8 or an address"),
            }
        })
    })
    .collect()
}

fn parse_bool(key: &str, origin: &str, v: &str) -> Result<bool, ConfigError> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" | "" => Ok(false),
        _ => Err(ConfigError::Invalid {
            key: key.into(),
            source_name: origin.into(),
            message: format!("{v:?} is not a boolean (true or false)"),
        }),
    }
}

fn parse_addr(key: &str, origin: &str, v: &str) -> Result<SocketAddr, ConfigError> {
    v.trim().parse().map_err(|e| ConfigError::Invalid {
        key: key.into(),
        source_name: origin.into(),
        message: format!("{v:?} is not an address like 127.0.0.1:1984: {e}"),
    })
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

    #[test]
    fn the_example_file_is_valid_and_documents_every_key() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../runhook/runhook.example.toml");
        let text = std::fs::read_to_string(path).unwrap();
        // Every key appears in the example, commented or not.
        for key in [
            "listen",
            "data_dir",
            "api_key",
            "max_body_bytes",
            "max_decompressed_bytes",
            "reload_interval_ms",
            "epoch_tick_ms",
            "max_instances",
            "[delivery]",
            "attempt_timeout_ms",
            "transport_retries",
            "server_error_retries",
            "backoff_ms",
            "max_backoff_ms",
            "per_endpoint_concurrency",
            "allow_networks",
            "retention_days",
            "RUNHOOK_DELIVERY_RETENTION_DAYS",
            "poll_interval_ms",
            "RUNHOOK_DELIVERY_POLL_INTERVAL_MS",
            "require_https",
            "RUNHOOK_DELIVERY_REQUIRE_HTTPS",
            "secret_key_file",
            "RUNHOOK_SECRET_KEY",
            "RUNHOOK_ALLOW_NETWORKS",
            "[[rules]]",
        ] {
            assert!(text.contains(key), "runhook.example.toml does not document {key}");
        }
        let c = Config::load(Some(std::path::Path::new(path)), |_| None, &Overrides::default()).unwrap();
        assert_eq!(c.rules.len(), 1);
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
