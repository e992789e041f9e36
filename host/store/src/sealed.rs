//! Delivery targets as the outbox stores them: URL, header values and
//! signing secret, sealed once per distinct target.
//!
//! Every delivery of a webhook carries the same URL, headers and secret.
//! Sealing them afresh for each row would give each row its own
//! ciphertext, and the worker would open (decrypt and authenticate) each
//! one: two to five AEAD operations per delivery, the largest cost of
//! reading a due row. Instead the store remembers the sealing of recent
//! targets, so the rows of one webhook share ciphertexts, and remembers what
//! it opened, so each distinct ciphertext is opened once per process.
//!
//! Equal ciphertexts reveal that two rows go to the same target, which the
//! rows' rule and endpoint columns reveal already; they reveal nothing of
//! the target. Both memories hold at most `CAPACITY` entries and start
//! over when full. Keys can change while the server runs (`runhook keys
//! rotate` on a cluster): a remembered sealing is used only while it is
//! under the current key, so after a change every new row is sealed under
//! the new key.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use super::StoreError;
use runhook_core::secrets::Keyring;

/// Targets remembered in each direction.
const CAPACITY: usize = 1024;

/// A target in clear.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Target {
    /// The URL.
    pub url: String,
    /// Custom headers.
    pub headers: BTreeMap<String, String>,
    /// The signing secrets, as one space-separated text (see the outbox).
    pub secret: Option<String>,
}

/// A target as stored: the sealed URL, the headers as a JSON object of
/// sealed values, the sealed secret.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SealedTarget {
    /// The sealed URL.
    pub url: String,
    /// The headers: a JSON object of sealed values.
    pub headers: String,
    /// The sealed signing secrets.
    pub secret: Option<String>,
}

/// The two memories; one per store.
#[derive(Debug, Default)]
pub struct TargetMemo {
    sealed: Mutex<HashMap<Target, SealedTarget>>,
    opened: Mutex<HashMap<SealedTarget, Arc<Target>>>,
}

fn remember<K: std::hash::Hash + Eq, V>(map: &Mutex<HashMap<K, V>>, key: K, value: V) {
    // A poisoned lock only means another thread panicked mid-insert; the
    // map is still a valid cache.
    let mut map = map.lock().unwrap_or_else(|e| e.into_inner());
    if map.len() >= CAPACITY {
        map.clear();
    }
    map.insert(key, value);
}

impl TargetMemo {
    /// `target` sealed with `keys`, the same ciphertexts as last time.
    pub fn seal(&self, keys: &Keyring, target: &Target) -> SealedTarget {
        if let Some(s) = self.sealed.lock().unwrap_or_else(|e| e.into_inner()).get(target)
            && keys.is_current(&s.url)
        {
            return s.clone();
        }
        let sealed = SealedTarget {
            url: keys.seal(&target.url),
            headers: seal_headers(keys, &target.headers),
            secret: target.secret.as_deref().map(|s| keys.seal(s)),
        };
        remember(&self.sealed, target.clone(), sealed.clone());
        sealed
    }

    /// `sealed` opened with `keys`.
    pub fn open(&self, keys: &Keyring, sealed: SealedTarget) -> Result<Arc<Target>, StoreError> {
        if let Some(t) = self.opened.lock().unwrap_or_else(|e| e.into_inner()).get(&sealed) {
            return Ok(t.clone());
        }
        let target = Arc::new(open_target(keys, &sealed)?);
        remember(&self.opened, sealed, target.clone());
        Ok(target)
    }
}

/// Opens one sealed value of `column`.
pub fn open(keys: &Keyring, column: &'static str, v: &str) -> Result<String, StoreError> {
    keys.open(v).map_err(|e| StoreError::corrupt(column, e))
}

/// Headers as stored: a JSON object of sealed values.
pub fn seal_headers(keys: &Keyring, headers: &BTreeMap<String, String>) -> String {
    let sealed: BTreeMap<&String, String> = headers.iter().map(|(k, v)| (k, keys.seal(v))).collect();
    serde_json::to_string(&sealed).unwrap_or_else(|_| "{}".into())
}

/// How many of a stored target's sealed values (URL, secret, header
/// values) are not sealed under `keys`' current key.
pub fn stale_values(keys: &Keyring, sealed: &SealedTarget) -> Result<usize, StoreError> {
    let headers: BTreeMap<String, String> =
        serde_json::from_str(&sealed.headers).map_err(|e| StoreError::corrupt("outbox.headers", e))?;
    let parts = std::iter::once(&sealed.url).chain(&sealed.secret).chain(headers.values());
    Ok(parts.filter(|v| !keys.is_current(v)).count())
}

/// Opens every part of a stored target, without the memory.
pub fn open_target(keys: &Keyring, sealed: &SealedTarget) -> Result<Target, StoreError> {
    let headers = serde_json::from_str::<BTreeMap<String, String>>(&sealed.headers)
        .map_err(|e| StoreError::corrupt("outbox.headers", e))?
        .into_iter()
        .map(|(k, v)| Ok((k, open(keys, "outbox.headers", &v)?)))
        .collect::<Result<_, StoreError>>()?;
    Ok(Target {
        url: open(keys, "outbox.url", &sealed.url)?,
        headers,
        secret: sealed.secret.as_deref().map(|s| open(keys, "outbox.signing_secret", s)).transpose()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> Target {
        Target {
            url: "https://hooks.example.com/x?token=t0k3n".into(),
            headers: [("x-api-key".to_string(), "k3y".to_string())].into_iter().collect(),
            secret: Some("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into()),
        }
    }

    #[test]
    fn one_target_shares_one_sealing_and_opens_back() {
        let (keys, memo) = (Keyring::generate(), TargetMemo::default());
        let a = memo.seal(&keys, &target());
        let b = memo.seal(&keys, &target());
        assert_eq!(a, b);
        assert!(!a.url.contains("t0k3n") && !a.headers.contains("k3y"));
        assert_eq!(*memo.open(&keys, a.clone()).unwrap(), target());
        // A fresh process (no memory) opens it too.
        assert_eq!(open_target(&keys, &a).unwrap(), target());
        let other = Target { url: "https://hooks.example.com/y".into(), ..target() };
        assert_ne!(memo.seal(&keys, &other).url, a.url);
    }

    #[test]
    fn tampered_values_are_corrupt_not_remembered() {
        let (keys, memo) = (Keyring::generate(), TargetMemo::default());
        let mut sealed = memo.seal(&keys, &target());
        sealed.url.pop();
        assert!(matches!(memo.open(&keys, sealed.clone()), Err(StoreError::Corrupt { column: "outbox.url", .. })));
        assert!(memo.open(&keys, sealed).is_err());
    }

    #[test]
    fn memory_is_bounded() {
        let (keys, memo) = (Keyring::generate(), TargetMemo::default());
        for i in 0..CAPACITY + 10 {
            let t = Target { url: format!("https://hooks.example.com/{i}"), ..target() };
            let sealed = memo.seal(&keys, &t);
            memo.open(&keys, sealed).unwrap();
        }
        assert!(memo.sealed.lock().unwrap().len() <= CAPACITY);
        assert!(memo.opened.lock().unwrap().len() <= CAPACITY);
    }
}
