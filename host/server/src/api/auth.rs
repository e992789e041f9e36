//! API keys: the `x-api-key` check (or a dashboard session's cookie, see
//! `signin`), and signed attachment URLs.
//!
//! The key is compared in constant time. Attachment URLs are handed to the
//! SDK as "presigned" URLs, which it fetches without headers: links signed
//! with the key (see `links`), so rotating the key revokes them.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use subtle::ConstantTimeEq;

use super::AppState;
use super::error::ApiError;
use crate::links::Links;
use runhook_core::model::RunId;

/// How long an attachment URL stays valid.
const URL_LIFETIME_SECS: i64 = 3600;

/// The configured API key and the links signed with it.
pub struct ApiKey {
    key: String,
    links: Links,
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey(..)") // never print the key
    }
}

impl ApiKey {
    /// Wraps a key.
    pub fn new(key: &str) -> Self {
        Self { key: key.to_string(), links: Links::new(key) }
    }

    /// Whether `presented` is the key.
    pub fn matches(&self, presented: &[u8]) -> bool {
        presented.ct_eq(self.key.as_bytes()).into()
    }

    /// The links signed with this key.
    pub fn links(&self) -> &Links {
        &self.links
    }

    /// A URL path (relative, as LangSmith's presigned URLs are joined to the
    /// endpoint) that serves one attachment for an hour.
    pub fn attachment_url(&self, run: RunId, name: &str) -> String {
        self.links.sign(&format!("/attachments/{run}/{name}"), URL_LIFETIME_SECS)
    }

    /// Whether `sig` authorises `run`/`name` until `expires`, and it has not passed.
    pub fn verify(&self, run: RunId, name: &str, expires: i64, sig: &str) -> bool {
        self.links.verify(&format!("/attachments/{run}/{name}"), expires, sig)
    }
}

/// Refuses requests without the right `x-api-key`, or, from the
/// dashboard, a valid session cookie (and its CSRF token for changes).
pub(super) async fn require_api_key(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    if let Some(key) = req.headers().get("x-api-key") {
        return match state.key.matches(key.as_bytes()) {
            true => Ok(next.run(req).await),
            false => Err(ApiError::Unauthorized),
        };
    }
    match super::signin::cookie(req.headers()) {
        Some(c) if state.sessions.valid(c) => {
            if state.sessions.allows(req.method(), req.headers(), c) {
                Ok(next.run(req).await)
            } else {
                Err(ApiError::Forbidden("a change from a dashboard session needs its x-csrf-token header".into()))
            }
        }
        _ => Err(ApiError::Unauthorized),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_urls() {
        let key = ApiKey::new("rh_0123456789abcdef");
        assert!(key.matches(b"rh_0123456789abcdef"));
        assert!(!key.matches(b"rh_0123456789abcdeF"));
        assert!(!key.matches(b""));
        let run = RunId::new_v4();
        let url = key.attachment_url(run, "image");
        let query = url.split_once('?').unwrap().1;
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query).unwrap();
        let expires: i64 = pairs[0].1.parse().unwrap();
        assert!(key.verify(run, "image", expires, &pairs[1].1));
        assert!(!key.verify(run, "other", expires, &pairs[1].1));
        assert!(!key.verify(run, "image", expires - 2 * URL_LIFETIME_SECS, &pairs[1].1));
        assert!(!ApiKey::new("another_key_0123456").verify(run, "image", expires, &pairs[1].1));
        assert_eq!(format!("{key:?}"), "ApiKey(..)");
    }
}
