//! Secrets at rest: how a rule's secrets are sealed in what a backend
//! stores, and the re-sealing a key rotation needs.
//!
//! A rule's webhook URLs (they carry tokens in their query), header values,
//! signing secret and retired signing secret are sealed with the operator's
//! keyring before a backend writes the spec, and opened when it reads it
//! back: nothing above the store sees a sealed value, nothing in the
//! database holds a plain one. Outbox targets are sealed by [`crate::sealed`].

use async_trait::async_trait;

use runhook_core::model::RuleSpec;
use runhook_core::secrets::Keyring;

use crate::StoreError;

/// Re-sealing stored secrets.
#[async_trait]
pub trait SecretStore: Send + Sync + std::fmt::Debug {
    /// Re-seals every stored secret not sealed under the current key (rules'
    /// specs and the outbox's targets), in one transaction; returns how many
    /// values changed.
    async fn reseal_secrets(&self) -> Result<usize, StoreError>;
}

/// Applies `f` to every secret a spec holds.
pub fn map_secrets(
    spec: &mut RuleSpec,
    mut f: impl FnMut(&str) -> Result<String, StoreError>,
) -> Result<(), StoreError> {
    for w in &mut spec.webhooks {
        w.url = f(&w.url)?;
        for v in w.headers.iter_mut().flat_map(|h| h.values_mut()) {
            *v = f(v)?;
        }
    }
    if let Some(s) = &mut spec.signing_secret {
        *s = f(s)?;
    }
    if let Some(r) = &mut spec.retired_signing_secret {
        r.secret = f(&r.secret)?;
    }
    Ok(())
}

/// The spec as stored: JSON, its secrets sealed.
pub fn seal_spec(keys: &Keyring, spec: &RuleSpec) -> Result<String, StoreError> {
    let mut sealed = spec.clone();
    map_secrets(&mut sealed, |v| Ok(keys.seal(v)))?;
    serde_json::to_string(&sealed).map_err(|e| StoreError::corrupt("rules.spec", e))
}

/// A spec as stored, opened.
pub fn open_spec(keys: &Keyring, text: &str) -> Result<RuleSpec, StoreError> {
    let mut spec = serde_json::from_str::<RuleSpec>(text).map_err(|e| StoreError::corrupt("rules.spec", e))?;
    map_secrets(&mut spec, |v| keys.open(v).map_err(|e| StoreError::corrupt("rules.spec", e)))?;
    Ok(spec)
}

/// A stored spec re-sealed under the current key, with how many of its
/// values were not; `None` when all were.
pub fn reseal_spec(keys: &Keyring, text: &str) -> Result<Option<(String, usize)>, StoreError> {
    let mut spec = serde_json::from_str::<RuleSpec>(text).map_err(|e| StoreError::corrupt("rules.spec", e))?;
    let mut stale = 0;
    map_secrets(&mut spec, |v| {
        stale += usize::from(!keys.is_current(v));
        keys.open(v).map_err(|e| StoreError::corrupt("rules.spec", e))
    })?;
    if stale == 0 {
        return Ok(None);
    }
    Ok(Some((seal_spec(keys, &spec)?, stale)))
}
