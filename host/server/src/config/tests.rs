//! The configuration's own tests: precedence, every default valid, the
//! example file documenting every setting, messages naming the key.

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
        assert!(text.contains(setting.env), "runhook.example.toml does not name {} ({})", setting.env, setting.name);
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
    assert!(err.contains("delivery.transport_retries") && err.contains("RUNHOOK_DELIVERY_TRANSPORT_RETRIES"), "{err}");
    let err = load("[delivery]\nbackoff_ms = 90000\n", &[]).unwrap_err().to_string();
    assert!(err.contains("delivery.backoff_ms"), "{err}");
}

#[test]
fn layers_file_then_env() {
    let c =
        load("listen = \"0.0.0.0:9000\"\n[limits]\nmax_body_bytes = 2048\n", &[("RUNHOOK_LISTEN", "127.0.0.1:9001")])
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
