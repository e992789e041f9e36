//! Every setting, declared once: its key in the file, its environment
//! variable, its default, and how a value is read and checked. The file,
//! the environment and the defaults all go through these rows (see
//! `Config::load`); `runhook.example.toml` documents each (a test reads it).

use std::path::PathBuf;
use std::time::Duration;

use super::Config;

/// A value for a setting, from the file or as text (the environment, a default).
#[derive(Debug, Clone, Copy)]
pub(super) enum Raw<'a> {
    File(&'a toml::Value),
    Text(&'a str),
}

/// One setting, declared once.
pub(super) struct Setting {
    /// Its key in the file, dotted (`delivery.attempt_timeout_ms`); `None`
    /// for a setting only the environment may give (a secret).
    pub(super) key: Option<&'static str>,
    /// Its environment variable.
    pub(super) env: &'static str,
    /// Its name in messages: the key, or the variable.
    pub(super) name: &'static str,
    /// Its default, as text (empty: unset).
    pub(super) default: &'static str,
    /// Reads and checks a value, and sets it.
    pub(super) apply: fn(&mut Config, Raw<'_>) -> Result<(), String>,
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
pub(super) const SETTINGS: &[Setting] = &[
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
    setting!("store.url", "RUNHOOK_DATABASE_URL", "", |c, v| {
        let url = text(v)?;
        c.database = if url.trim().is_empty() { None } else { Some(super::DatabaseUrl::parse(&url)?) };
        Ok(())
    }),
    setting!("store.lease_ms", "RUNHOOK_LEASE_MS", "20000", |c, v| {
        c.lease = millis(v, 1000..=3_600_000)?;
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
    setting!("delivery.max_inline_io_bytes", "RUNHOOK_DELIVERY_MAX_INLINE_IO_BYTES", "1048576", |c, v| {
        c.delivery.max_inline_io_bytes =
            number(v, 0..=1 << 30).map_err(|e| format!("{e} (0 always sends inputs and outputs inline)"))?;
        Ok(())
    }),
    setting!("delivery.io_link_lifetime_seconds", "RUNHOOK_DELIVERY_IO_LINK_LIFETIME_SECONDS", "86400", |c, v| {
        c.delivery.io_link_lifetime = Duration::from_secs(number(v, 1..=2_592_000)?);
        Ok(())
    }),
    setting!("delivery.retention_days", "RUNHOOK_DELIVERY_RETENTION_DAYS", "30", |c, v| {
        c.delivery.retention_days = number(v, 0..=36_500).map_err(|e| format!("{e} (0 keeps deliveries forever)"))?;
        Ok(())
    }),
    setting!(
        "delivery.pagerduty_events_url",
        "RUNHOOK_DELIVERY_PAGERDUTY_EVENTS_URL",
        "https://events.pagerduty.com/v2/enqueue",
        |c, v| {
            let url = text(v)?;
            match url::Url::parse(url.trim()) {
                Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => {}
                _ => return Err(format!("{url:?} is not an http or https URL")),
            }
            c.delivery.pagerduty_events_url = url.trim().to_string();
            Ok(())
        }
    ),
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
