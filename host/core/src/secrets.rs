//! Secrets at rest: the operator's keys and the sealing of webhook URLs,
//! header values and signing secrets before they reach the database.
//!
//! A sealed value is `enc:v1:<key id>:<base64(nonce || ciphertext)>`,
//! XChaCha20-Poly1305 with a random 192-bit nonce and the key id as
//! associated data. The key id is the first 8 hex digits of the key's
//! SHA-256, so it names a key without revealing it. The [`Keyring`]'s first
//! key seals; every key opens, which is what lets `runhook keys rotate`
//! re-seal under a new key while old rows stay readable.
//!
//! Keys come from `RUNHOOK_SECRET_KEY` (base64 keys separated by commas,
//! the first current) or from the key file in the data directory (one
//! base64 key per line, the first current), generated with mode 0600 at
//! first start. Values written before encryption existed are plain text;
//! they are read as they are and re-sealed at the next start.
//!
//! A ring's keys can be replaced while it is in use ([`Keyring::replace`]):
//! every clone shares them, so a server that re-reads its key file hands
//! the new keys to its store at once. That is how replicas of a cluster
//! rotate keys without stopping (`runhook keys rotate`).
//!
//! Layering: layer 0; imports nothing from the crate.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use sha2::Digest;

const PREFIX: &str = "enc:v1:";
const NONCE_LEN: usize = 24;
/// The key file's name in the data directory.
pub const KEY_FILE: &str = "secret.key";

/// Why a key or a sealed value cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// A key is not 32 bytes of base64.
    #[error("{origin}: key {index} is not 32 bytes of standard base64")]
    BadKey {
        /// Where the key came from.
        origin: String,
        /// Its position, from 1.
        index: usize,
    },
    /// No key at all.
    #[error("{0}: holds no key")]
    NoKey(String),
    /// The value was sealed under a key the ring does not have.
    #[error("sealed under key {0}, which is not among the configured keys")]
    UnknownKey(String),
    /// The value is malformed or was tampered with.
    #[error("sealed value is corrupt or was modified")]
    Corrupt,
    /// The key file cannot be read or written.
    #[error("key file {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// One key and its id.
#[derive(Clone)]
struct Key {
    id: String,
    cipher: XChaCha20Poly1305,
    raw: [u8; 32],
}

impl Key {
    fn new(raw: [u8; 32]) -> Self {
        let id = hex::encode(&sha2::Sha256::digest(raw)[..4]);
        Self { id, cipher: XChaCha20Poly1305::new(&raw.into()), raw }
    }
}

/// The keys secrets are sealed and opened with; the first one seals.
/// Clones share the keys (see [`Keyring::replace`]).
#[derive(Clone)]
pub struct Keyring {
    keys: Arc<RwLock<Arc<[Key]>>>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Key ids only: the keys never reach a log.
        f.debug_struct("Keyring").field("keys", &self.ids()).finish()
    }
}

impl Keyring {
    fn of(keys: Vec<Key>) -> Self {
        Self { keys: Arc::new(RwLock::new(keys.into())) }
    }

    /// The keys now (a replacement never disturbs a reader holding these).
    fn keys(&self) -> Arc<[Key]> {
        self.keys.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// A ring of one fresh random key (for tests and tools).
    pub fn generate() -> Self {
        Self::of(vec![Key::new(rand::random())])
    }

    /// Parses base64 keys, the first current.
    pub fn parse<'a>(origin: &str, keys: impl IntoIterator<Item = &'a str>) -> Result<Self, SecretError> {
        let engine = base64::engine::general_purpose::STANDARD;
        let mut out = Vec::new();
        for (i, text) in keys.into_iter().map(str::trim).filter(|k| !k.is_empty() && !k.starts_with('#')).enumerate() {
            let raw: [u8; 32] = engine
                .decode(text)
                .ok()
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| SecretError::BadKey { origin: origin.into(), index: i + 1 })?;
            out.push(Key::new(raw));
        }
        if out.is_empty() {
            return Err(SecretError::NoKey(origin.into()));
        }
        Ok(Self::of(out))
    }

    /// The keys in the key file at `path`, created with one fresh key
    /// (mode 0600) when absent.
    pub fn load_file(path: &Path) -> Result<Self, SecretError> {
        let path = path.to_path_buf();
        match std::fs::read_to_string(&path) {
            Ok(text) => Self::parse(&path.display().to_string(), text.lines()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let ring = Self::generate();
                ring.write_file(&path)?;
                Ok(ring)
            }
            Err(source) => Err(SecretError::Io { path, source }),
        }
    }

    /// The keys in the key file at `path`, which must exist.
    pub fn read_file(path: &Path) -> Result<Self, SecretError> {
        let text = std::fs::read_to_string(path).map_err(|source| SecretError::Io { path: path.into(), source })?;
        Self::parse(&path.display().to_string(), text.lines())
    }

    /// Writes the ring to `path` atomically, mode 0600, current key first.
    pub fn write_file(&self, path: &Path) -> Result<(), SecretError> {
        let io = |source| SecretError::Io { path: path.to_path_buf(), source };
        let engine = base64::engine::general_purpose::STANDARD;
        let mut text = String::from("# runhook secret keys: base64, the first one seals. Keep this file private.\n");
        for k in self.keys().iter() {
            text.push_str(&engine.encode(k.raw));
            text.push('\n');
        }
        let dir = path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(io)?;
        let tmp = tempfile::Builder::new().prefix(".secret.key").tempfile_in(dir).map_err(io)?;
        // tempfile creates the file with mode 0600 already.
        std::fs::write(tmp.path(), text).map_err(io)?;
        tmp.persist(path).map_err(|e| io(e.error))?;
        Ok(())
    }

    /// From now on, this ring and every clone of it seal and open with
    /// `other`'s keys.
    pub fn replace(&self, other: &Keyring) {
        let keys = other.keys();
        *self.keys.write().unwrap_or_else(PoisonError::into_inner) = keys;
    }

    /// A ring with a fresh key in front of these (the first step of a rotation).
    pub fn with_new_key(&self) -> Self {
        let mut keys = vec![Key::new(rand::random())];
        keys.extend(self.keys().iter().cloned());
        Self::of(keys)
    }

    /// A ring with a fresh key right after the current one: it opens
    /// values sealed under the fresh key and still seals under the current
    /// one (the first step of a rotation while replicas serve).
    pub fn accepting_new_key(&self) -> Self {
        let keys = self.keys();
        let mut out = vec![keys[0].clone(), Key::new(rand::random())];
        out.extend(keys[1..].iter().cloned());
        Self::of(out)
    }

    /// A ring with the key `id` moved first, so it seals; `None` when it
    /// holds no such key.
    pub fn promoted(&self, id: &str) -> Option<Self> {
        let keys = self.keys();
        let chosen = keys.iter().find(|k| k.id == id)?.clone();
        Some(Self::of(std::iter::once(chosen).chain(keys.iter().filter(|k| k.id != id).cloned()).collect()))
    }

    /// Only the current key (the last step of a rotation).
    pub fn current_only(&self) -> Self {
        Self::of(self.keys()[..1].to_vec())
    }

    /// The key ids, current first.
    pub fn ids(&self) -> Vec<String> {
        self.keys().iter().map(|k| k.id.clone()).collect()
    }

    /// Seals `plain` under the current key.
    pub fn seal(&self, plain: &str) -> String {
        let keys = self.keys();
        let key = &keys[0];
        let nonce: [u8; NONCE_LEN] = rand::random();
        let payload = Payload { msg: plain.as_bytes(), aad: key.id.as_bytes() };
        // Encryption fails only for messages beyond 256 GiB.
        let sealed = key.cipher.encrypt(XNonce::from_slice(&nonce), payload).unwrap_or_default();
        let mut blob = nonce.to_vec();
        blob.extend(sealed);
        format!("{PREFIX}{}:{}", key.id, base64::engine::general_purpose::STANDARD_NO_PAD.encode(blob))
    }

    /// Opens a sealed value; a value that is not sealed is returned as it is.
    pub fn open(&self, stored: &str) -> Result<String, SecretError> {
        let Some(rest) = stored.strip_prefix(PREFIX) else {
            return Ok(stored.to_string());
        };
        let (id, blob) = rest.split_once(':').ok_or(SecretError::Corrupt)?;
        let keys = self.keys();
        let key = keys.iter().find(|k| k.id == id).ok_or_else(|| SecretError::UnknownKey(id.into()))?;
        let blob = base64::engine::general_purpose::STANDARD_NO_PAD.decode(blob).map_err(|_| SecretError::Corrupt)?;
        if blob.len() < NONCE_LEN {
            return Err(SecretError::Corrupt);
        }
        let (nonce, sealed) = blob.split_at(NONCE_LEN);
        let plain = key
            .cipher
            .decrypt(XNonce::from_slice(nonce), Payload { msg: sealed, aad: id.as_bytes() })
            .map_err(|_| SecretError::Corrupt)?;
        String::from_utf8(plain).map_err(|_| SecretError::Corrupt)
    }

    /// Whether `stored` is sealed under the current key (nothing to re-seal).
    pub fn is_current(&self, stored: &str) -> bool {
        let keys = self.keys();
        stored.strip_prefix(PREFIX).and_then(|r| r.split_once(':')).is_some_and(|(id, _)| id == keys[0].id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_opens_and_rotates() {
        let ring = Keyring::generate();
        let sealed = ring.seal("https://hooks.example.com/x?token=s3cret");
        assert!(!sealed.contains("s3cret"));
        assert!(ring.is_current(&sealed));
        assert_eq!(ring.open(&sealed).unwrap(), "https://hooks.example.com/x?token=s3cret");
        // Two seals of one value differ (random nonce).
        assert_ne!(ring.seal("a"), ring.seal("a"));

        let rotated = ring.with_new_key();
        assert!(!rotated.is_current(&sealed));
        assert_eq!(rotated.open(&sealed).unwrap(), "https://hooks.example.com/x?token=s3cret");
        let resealed = rotated.seal(&rotated.open(&sealed).unwrap());
        let only_new = rotated.current_only();
        assert_eq!(only_new.open(&resealed).unwrap(), "https://hooks.example.com/x?token=s3cret");
        assert!(matches!(only_new.open(&sealed), Err(SecretError::UnknownKey(_))));
    }

    #[test]
    fn a_replaced_ring_changes_every_clone() {
        let ring = Keyring::generate();
        let held = ring.clone();
        let accepting = ring.accepting_new_key();
        let (old, new) = (accepting.ids()[0].clone(), accepting.ids()[1].clone());
        held.replace(&accepting);
        assert_eq!(ring.ids(), vec![old.clone(), new.clone()], "the clone sees the new key");
        assert!(ring.is_current(&ring.seal("x")), "and still seals under the old one");
        let promoted = ring.promoted(&new).unwrap();
        assert_eq!(promoted.ids(), vec![new.clone(), old]);
        ring.replace(&promoted);
        assert!(held.seal("y").starts_with(&format!("enc:v1:{new}:")));
        assert!(ring.promoted("nope").is_none());
    }

    #[test]
    fn refuses_tampering_and_passes_plain_text_through() {
        let ring = Keyring::generate();
        let mut sealed = ring.seal("value").into_bytes();
        let last = sealed.len() - 2;
        sealed[last] = if sealed[last] == b'A' { b'B' } else { b'A' };
        assert!(matches!(ring.open(std::str::from_utf8(&sealed).unwrap()), Err(SecretError::Corrupt)));
        assert_eq!(ring.open("legacy plain").unwrap(), "legacy plain");
        assert!(!ring.is_current("legacy plain"));
    }

    #[test]
    fn key_file_is_created_private_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let ring = Keyring::load_file(&dir.path().join(KEY_FILE)).unwrap();
        let again = Keyring::load_file(&dir.path().join(KEY_FILE)).unwrap();
        assert_eq!(ring.ids(), again.ids());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(KEY_FILE)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let err = Keyring::parse("env", ["bm90IGEga2V5"]).unwrap_err().to_string();
        assert!(err.contains("key 1"), "{err}");
        assert!(Keyring::parse("env", " , ".split(',')).is_err());
    }
}
