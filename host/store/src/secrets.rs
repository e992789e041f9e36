//! Secrets at rest: how a rule's (and an alert's) secrets are sealed in
//! what a backend stores, and the re-sealing a key rotation needs.
//!
//! A rule's webhook URLs (they carry tokens in their query), header values,
//! formats' and PagerDuty alerts' `routing_key`s, signing secret and retired signing secret are sealed with the operator's
//! keyring before a backend writes the spec, and opened when it reads it
//! back: nothing above the store sees a sealed value, nothing in the
//! database holds a plain one. Outbox targets are sealed by [`crate::sealed`].

use async_trait::async_trait;

use serde::Serialize;
use serde::de::DeserializeOwned;

use runhook_core::model::alert::AlertSpec;
use runhook_core::model::{RuleSpec, WebhookTarget};
use runhook_core::secrets::Keyring;

use crate::StoreError;

/// Re-sealing stored secrets.
#[async_trait]
pub trait SecretStore: Send + Sync + std::fmt::Debug {
    /// Re-seals every stored secret not sealed under the current key (rules'
    /// and alerts' specs and the outbox's targets), in one transaction; returns how many
    /// values changed.
    async fn reseal_secrets(&self) -> Result<usize, StoreError>;
}

/// A definition with secrets in it (a rule's spec, an alert's): its
/// webhook URLs, header values and signing secrets.
pub trait Sealable: Serialize + DeserializeOwned + Clone {
    /// The table and column it is stored in, for errors.
    const COLUMN: &'static str;
    /// Applies `f` to every secret value.
    fn map_secrets(&mut self, f: &mut dyn FnMut(&str) -> Result<String, StoreError>) -> Result<(), StoreError>;
}

/// Applies `f` to the secrets of `webhooks` and a signing secret.
fn map_targets(
    webhooks: &mut [WebhookTarget],
    signing_secret: Option<&mut String>,
    f: &mut dyn FnMut(&str) -> Result<String, StoreError>,
) -> Result<(), StoreError> {
    for w in webhooks {
        w.url = f(&w.url)?;
        for v in w.headers.iter_mut().flat_map(|h| h.values_mut()) {
            *v = f(v)?;
        }
        // A format's integration key (PagerDuty's routing_key) is a secret
        // like a URL token.
        if let Some(serde_json::Value::String(key)) = w.format.as_mut().and_then(|r| r.config.get_mut("routing_key")) {
            *key = f(key)?;
        }
    }
    if let Some(s) = signing_secret {
        *s = f(s)?;
    }
    Ok(())
}

impl Sealable for RuleSpec {
    const COLUMN: &'static str = "rules.spec";
    fn map_secrets(&mut self, f: &mut dyn FnMut(&str) -> Result<String, StoreError>) -> Result<(), StoreError> {
        map_targets(&mut self.webhooks, self.signing_secret.as_mut(), f)?;
        for a in &mut self.alerts {
            a.routing_key = f(&a.routing_key)?;
        }
        if let Some(r) = &mut self.retired_signing_secret {
            r.secret = f(&r.secret)?;
        }
        Ok(())
    }
}

impl Sealable for AlertSpec {
    const COLUMN: &'static str = "alerts.spec";
    fn map_secrets(&mut self, f: &mut dyn FnMut(&str) -> Result<String, StoreError>) -> Result<(), StoreError> {
        map_targets(&mut self.webhooks, self.signing_secret.as_mut(), f)
    }
}

/// The spec as stored: JSON, its secrets sealed.
pub fn seal_spec<S: Sealable>(keys: &Keyring, spec: &S) -> Result<String, StoreError> {
    let mut sealed = spec.clone();
    sealed.map_secrets(&mut |v| Ok(keys.seal(v)))?;
    serde_json::to_string(&sealed).map_err(|e| StoreError::corrupt(S::COLUMN, e))
}

/// A spec as stored, opened.
pub fn open_spec<S: Sealable>(keys: &Keyring, text: &str) -> Result<S, StoreError> {
    let mut spec = serde_json::from_str::<S>(text).map_err(|e| StoreError::corrupt(S::COLUMN, e))?;
    spec.map_secrets(&mut |v| keys.open(v).map_err(|e| StoreError::corrupt(S::COLUMN, e)))?;
    Ok(spec)
}

/// A stored spec re-sealed under the current key, with how many of its
/// values were not; `None` when all were.
pub fn reseal_spec<S: Sealable>(keys: &Keyring, text: &str) -> Result<Option<(String, usize)>, StoreError> {
    let mut spec = serde_json::from_str::<S>(text).map_err(|e| StoreError::corrupt(S::COLUMN, e))?;
    let mut stale = 0;
    spec.map_secrets(&mut |v| {
        stale += usize::from(!keys.is_current(v));
        keys.open(v).map_err(|e| StoreError::corrupt(S::COLUMN, e))
    })?;
    if stale == 0 {
        return Ok(None);
    }
    Ok(Some((seal_spec(keys, &spec)?, stale)))
}
