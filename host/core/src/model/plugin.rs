//! The plugins a rule uses, and where each comes from.
//!
//! A rule names one plugin per capability (match, transform, evaluate).
//! Each is either a component uploaded through the plugins API, named by
//! the SHA-256 of its bytes (what every replica of a cluster can load, and
//! what never changes under a rule), a file path under the server's
//! plugins directory (for local development: the server reloads it when it
//! changes), or a plugin shipped inside runhook by name (the message
//! formats: `slack`, `pagerduty` ...). A reference names exactly one.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The SHA-256 of an uploaded component's bytes: 64 lowercase hex digits.
/// Parsing accepts upper case and a `sha256:` prefix, and normalises both.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PluginDigest(String);

impl PluginDigest {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self(Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect())
    }

    /// The 64 hex digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first 12 digits, for names and logs.
    pub fn short(&self) -> &str {
        &self.0[..12]
    }
}

impl std::str::FromStr for PluginDigest {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let hex = s.strip_prefix("sha256:").unwrap_or(s);
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err("expected a SHA-256 digest: 64 hex digits, optionally after \"sha256:\"".into());
        }
        Ok(Self(hex.to_ascii_lowercase()))
    }
}

impl TryFrom<String> for PluginDigest {
    type Error = String;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<PluginDigest> for String {
    fn from(d: PluginDigest) -> Self {
        d.0
    }
}

impl std::fmt::Display for PluginDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a rule's plugin comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PluginSource {
    /// A component uploaded through the plugins API.
    Uploaded(PluginDigest),
    /// A component file under the server's plugins directory.
    Path(String),
    /// A component shipped inside runhook, by name (the server checks
    /// that it exists).
    Builtin(String),
}

/// A plugin a rule uses for one capability.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "PluginRefFields", into = "PluginRefFields")]
pub struct PluginRef {
    /// The component.
    pub source: PluginSource,
    /// The JSON config passed to every call.
    pub config: Value,
    /// Per-call deadline in milliseconds (default 100).
    pub deadline_ms: Option<u64>,
    /// Memory cap in MiB (default 64).
    pub memory_mib: Option<usize>,
}

impl PluginRef {
    /// A reference to `source` with the default config and limits.
    pub fn new(source: PluginSource) -> Self {
        Self { source, config: Value::Null, deadline_ms: None, memory_mib: None }
    }

    /// The uploaded component it names, if it names one.
    pub fn digest(&self) -> Option<&PluginDigest> {
        match &self.source {
            PluginSource::Uploaded(d) => Some(d),
            PluginSource::Path(_) | PluginSource::Builtin(_) => None,
        }
    }
}

/// A webhook's message format: a shipped format by name (`"slack"`), or
/// any transform plugin reference (`{"builtin": "pagerduty", "config":
/// {...}}`, `{"sha256": ...}`). Written back as the bare name when that is
/// all it holds.
pub mod format_ref {
    use super::{PluginRef, PluginSource};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Written {
        Name(String),
        Ref(PluginRef),
    }

    /// Reads a name or a reference.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<PluginRef>, D::Error> {
        let written: Option<serde_json::Value> = Option::deserialize(d)?;
        let Some(value) = written else { return Ok(None) };
        match serde_json::from_value::<Written>(value.clone()) {
            Ok(Written::Name(name)) if !name.trim().is_empty() => {
                Ok(Some(PluginRef::new(PluginSource::Builtin(name.trim().to_string()))))
            }
            Ok(Written::Name(_)) => Err(serde::de::Error::custom("format is empty")),
            Ok(Written::Ref(r)) => Ok(Some(r)),
            // Read as a reference again for its error, which names the problem.
            Err(_) => serde_json::from_value::<PluginRef>(value).map(Some).map_err(serde::de::Error::custom),
        }
    }

    /// Writes the bare name when the reference holds nothing else.
    pub fn serialize<S: Serializer>(r: &Option<PluginRef>, s: S) -> Result<S::Ok, S::Error> {
        r.as_ref().map(written).serialize(s)
    }

    /// The reference as written: the bare name when it holds nothing else.
    pub fn written(r: &PluginRef) -> serde_json::Value {
        match r {
            PluginRef { source: PluginSource::Builtin(name), config, deadline_ms: None, memory_mib: None }
                if config.is_null() =>
            {
                serde_json::Value::String(name.clone())
            }
            other => serde_json::to_value(other).unwrap_or_default(),
        }
    }
}

/// The wire form: exactly one of `sha256`, `path` and `builtin`.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PluginRefFields {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sha256: Option<PluginDigest>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    builtin: Option<String>,
    #[serde(default)]
    config: Value,
    #[serde(default)]
    deadline_ms: Option<u64>,
    #[serde(default)]
    memory_mib: Option<usize>,
}

impl TryFrom<PluginRefFields> for PluginRef {
    type Error = String;

    fn try_from(f: PluginRefFields) -> Result<Self, Self::Error> {
        let source = match (f.sha256, f.path, f.builtin) {
            (Some(d), None, None) => PluginSource::Uploaded(d),
            (None, Some(p), None) if !p.trim().is_empty() => PluginSource::Path(p),
            (None, Some(_), None) => return Err("path is empty".into()),
            (None, None, Some(b)) if !b.trim().is_empty() => PluginSource::Builtin(b.trim().to_string()),
            (None, None, Some(_)) => return Err("builtin is empty".into()),
            (None, None, None) => {
                return Err("name the plugin: sha256 (an uploaded plugin), path (a file in the plugins directory) \
                     or builtin (a format shipped with runhook)"
                    .into());
            }
            _ => return Err("give one of sha256, path and builtin".into()),
        };
        Ok(Self { source, config: f.config, deadline_ms: f.deadline_ms, memory_mib: f.memory_mib })
    }
}

impl From<PluginRef> for PluginRefFields {
    fn from(r: PluginRef) -> Self {
        let (sha256, path, builtin) = match r.source {
            PluginSource::Uploaded(d) => (Some(d), None, None),
            PluginSource::Path(p) => (None, Some(p), None),
            PluginSource::Builtin(b) => (None, None, Some(b)),
        };
        Self { sha256, path, builtin, config: r.config, deadline_ms: r.deadline_ms, memory_mib: r.memory_mib }
    }
}

/// The plugins of a rule, by capability.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RulePlugins {
    /// Decides matches after the filters.
    #[serde(default, rename = "match")]
    pub matcher: Option<PluginRef>,
    /// Rewrites each webhook payload.
    #[serde(default)]
    pub transform: Option<PluginRef>,
    /// Turns each selected run into feedback.
    #[serde(default)]
    pub evaluate: Option<PluginRef>,
}

impl RulePlugins {
    /// The uploaded components these plugins use, each once, sorted.
    pub fn digests(&self) -> Vec<PluginDigest> {
        let mut all: Vec<PluginDigest> = [&self.matcher, &self.transform, &self.evaluate]
            .into_iter()
            .flatten()
            .filter_map(|r| r.digest())
            .cloned()
            .collect();
        all.sort();
        all.dedup();
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_reference_names_exactly_one_source() {
        let digest = "AB".repeat(32);
        let r: PluginRef = serde_json::from_value(json!({"sha256": format!("sha256:{digest}")})).unwrap();
        assert_eq!(r.digest().map(PluginDigest::as_str), Some("ab".repeat(32).as_str()));
        assert_eq!(serde_json::to_value(&r).unwrap()["sha256"], json!("ab".repeat(32)));
        let r: PluginRef = serde_json::from_value(json!({"path": "p.wasm", "config": {"k": 1}})).unwrap();
        assert_eq!(r.source, PluginSource::Path("p.wasm".into()));
        let back: PluginRef = serde_json::from_value(serde_json::to_value(&r).unwrap()).unwrap();
        assert_eq!(back, r);
        for bad in
            [json!({}), json!({"path": " "}), json!({"path": "a", "sha256": "ab".repeat(32)}), json!({"sha256": "abc"})]
        {
            assert!(serde_json::from_value::<PluginRef>(bad.clone()).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_format_is_a_name_or_a_reference() {
        #[derive(Debug, Serialize, Deserialize)]
        struct W {
            #[serde(default, with = "format_ref")]
            format: Option<PluginRef>,
        }
        let w: W = serde_json::from_value(json!({"format": "slack"})).unwrap();
        assert_eq!(w.format.as_ref().map(|r| &r.source), Some(&PluginSource::Builtin("slack".into())));
        assert_eq!(serde_json::to_value(&w).unwrap(), json!({"format": "slack"}));
        let with_config = json!({"format": {"builtin": "pagerduty", "config": {"routing_key": "k"}}});
        let w: W = serde_json::from_value(with_config.clone()).unwrap();
        assert_eq!(serde_json::to_value(&w).unwrap()["format"]["config"], json!({"routing_key": "k"}));
        let w: W = serde_json::from_value(json!({})).unwrap();
        assert!(w.format.is_none());
        for bad in [json!({"format": ""}), json!({"format": 3}), json!({"format": {"builtin": "a", "path": "b"}})] {
            let e = serde_json::from_value::<W>(bad.clone()).unwrap_err().to_string();
            assert!(!e.contains("untagged"), "{bad}: {e}");
        }
    }

    #[test]
    fn digests_are_listed_once() {
        let d = PluginDigest::of(b"component");
        let uploaded = PluginRef::new(PluginSource::Uploaded(d.clone()));
        let p = RulePlugins { matcher: Some(uploaded.clone()), transform: Some(uploaded), evaluate: None };
        assert_eq!(p.digests(), vec![d]);
    }
}
