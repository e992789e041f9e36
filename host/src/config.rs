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
    /// Rules defined in the file (`[[rules]]`), in the rules API's JSON
    /// shape; applied at start (created, or updated to match).
    pub rules: Vec<serde_json::Value>,
}

/// Plugin host settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PluginSettings {
    /// How often plugin files are checked for changes (hot reload).
    pub reload_interval: std::time::Duration,
    /// Granularity of call deadlines.
    pub epoch_tick: std::time::Duration,
    /// Plugin instances alive at once (pre-reserved slots).
    pub max_instances: u32,
}

impl Default for PluginSettings {
    fn default() -> Self {
        Self {
            reload_interval: std::time::Duration::from_secs(1),
            epoch_tick: std::time::Duration::from_millis(10),
            max_instances: 256,
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
    rules: Vec<serde_json::Value>,
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
            if let Some(ms) = parsed.plugins.reload_interval_ms {
                config.plugins.reload_interval = std::time::Duration::from_millis(ms);
            }
            if let Some(ms) = parsed.plugins.epoch_tick_ms {
                config.plugins.epoch_tick = std::time::Duration::from_millis(ms);
            }
            if let Some(n) = parsed.plugins.max_instances {
                config.plugins.max_instances = n;
            }
            if let Some(v) = parsed.limits.max_body_bytes {
                config.limits.max_body_bytes = v;
            }
            if let Some(v) = parsed.limits.max_decompressed_bytes {
                config.limits.max_decompressed_bytes = v;
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
        if let Some(ms) = env_number(&env, "plugins.reload_interval_ms", "RUNHOOK_PLUGIN_RELOAD_INTERVAL_MS")? {
            config.plugins.reload_interval = std::time::Duration::from_millis(ms);
        }
        if let Some(ms) = env_number(&env, "plugins.epoch_tick_ms", "RUNHOOK_PLUGIN_EPOCH_TICK_MS")? {
            config.plugins.epoch_tick = std::time::Duration::from_millis(ms);
        }
        if let Some(n) = env_number(&env, "plugins.max_instances", "RUNHOOK_PLUGIN_MAX_INSTANCES")? {
            config.plugins.max_instances = n;
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
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/runhook.example.toml");
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
        let err = load("api_key = \"short\"\n", &[]).unwrap_err().to_string();
        assert!(err.contains("api_key"), "{err}");
    }
}
