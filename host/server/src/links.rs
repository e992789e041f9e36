//! Signed links: URLs that let their holder read one thing without the API
//! key, until they expire.
//!
//! A link is a path of this server with `expires` (a Unix time) and `sig`,
//! an HMAC-SHA256 of path and expiry keyed by a secret derived from the API
//! key, so rotating the key revokes every link. The SDK fetches
//! attachments through them (LangSmith's "presigned" URLs, relative to the
//! endpoint), and receivers fetch the large inputs and outputs a webhook
//! leaves out. Verification is in constant time.
//!
//! Layering: layer 1; imports nothing of the crate.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// Signs and checks links.
pub struct Links {
    secret: [u8; 32],
}

impl std::fmt::Debug for Links {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Links(..)") // never print the secret
    }
}

fn mac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let Ok(mut m) = Hmac::<Sha256>::new_from_slice(key) else { unreachable!("HMAC-SHA256 takes keys of any length") };
    m.update(data);
    m.finalize().into_bytes().into()
}

impl Links {
    /// Links keyed by a secret derived from `api_key`.
    pub fn new(api_key: &str) -> Self {
        Self { secret: mac(api_key.as_bytes(), b"runhook signed links v1") }
    }

    /// `path` with the query that lets its holder read it for `lifetime_secs`.
    pub fn sign(&self, path: &str, lifetime_secs: i64) -> String {
        let expires = chrono::Utc::now().timestamp() + lifetime_secs;
        format!("{path}?expires={expires}&sig={}", self.signature(path, expires))
    }

    /// Whether `sig` authorises `path` until `expires`, and that has not passed.
    pub fn verify(&self, path: &str, expires: i64, sig: &str) -> bool {
        expires >= chrono::Utc::now().timestamp()
            && sig.as_bytes().ct_eq(self.signature(path, expires).as_bytes()).into()
    }

    fn signature(&self, path: &str, expires: i64) -> String {
        hex::encode(mac(&self.secret, format!("{path}|{expires}").as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(link: &str) -> (i64, String) {
        let q = link.split_once('?').unwrap().1;
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(q).unwrap();
        (pairs[0].1.parse().unwrap(), pairs[1].1.clone())
    }

    #[test]
    fn links_verify_until_they_expire_and_only_for_their_path() {
        let links = Links::new("rh_0123456789abcdef");
        let (expires, sig) = query(&links.sign("/runs/a/io/outputs", 60));
        assert!(links.verify("/runs/a/io/outputs", expires, &sig));
        assert!(!links.verify("/runs/a/io/inputs", expires, &sig), "another path");
        assert!(!links.verify("/runs/a/io/outputs", expires + 1, &sig), "another expiry");
        assert!(!Links::new("rh_another_key_0000").verify("/runs/a/io/outputs", expires, &sig), "another key");
        let (past, sig) = query(&links.sign("/p", -5));
        assert!(!links.verify("/p", past, &sig), "expired");
        assert_eq!(format!("{links:?}"), "Links(..)");
    }
}
