//! Dashboard sessions: sign in with the API key, then a cookie.
//!
//! `POST /ui/session` with `{"api_key": ...}` sets `runhook_session`, an
//! HttpOnly, SameSite=Strict cookie valid for [`SESSION_SECS`], and answers
//! the session's CSRF token; `GET /ui/session` answers the token again
//! (for a page that was reloaded), `DELETE /ui/session` clears the cookie.
//!
//! The cookie is stateless: an expiry and a nonce, signed with a secret
//! derived from the API key, so rotating the key ends every session and no
//! replica needs to share session state. Requests the cookie authorises
//! that change something (any method but GET and HEAD) must also carry the
//! CSRF token in `x-csrf-token`: an HMAC of the cookie, which a page of
//! another origin can neither read nor compute, and a header it cannot
//! send without a CORS preflight that runhook never grants. SameSite=Strict
//! keeps the cookie off cross-site requests in the first place; the token
//! holds where that does not (older browsers, sibling subdomains).

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::json;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::error::ApiError;
use super::{AppState, body};

/// The cookie's name.
pub const COOKIE: &str = "runhook_session";
/// How long a session lasts: a working day.
pub const SESSION_SECS: i64 = 12 * 3600;

/// Signs and checks session cookies and their CSRF tokens.
pub struct Sessions {
    secret: [u8; 32],
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sessions(..)")
    }
}

impl Sessions {
    /// Sessions keyed by a secret derived from the API key.
    pub fn new(api_key: &str) -> Self {
        Self { secret: mac(api_key.as_bytes(), b"runhook dashboard sessions v1") }
    }

    /// A new session's cookie value, valid until `now + SESSION_SECS`.
    fn issue(&self) -> String {
        let expires = chrono::Utc::now().timestamp() + SESSION_SECS;
        let nonce = hex::encode(rand::random::<[u8; 16]>());
        let claim = format!("{expires}.{nonce}");
        format!("{claim}.{}", hex::encode(mac(&self.secret, claim.as_bytes())))
    }

    /// Whether `value` is a cookie this server issued that has not expired.
    pub fn valid(&self, value: &str) -> bool {
        let Some((claim, sig)) = value.rsplit_once('.') else { return false };
        let Some(expires) = claim.split_once('.').and_then(|(e, _)| e.parse::<i64>().ok()) else { return false };
        let want = hex::encode(mac(&self.secret, claim.as_bytes()));
        expires >= chrono::Utc::now().timestamp() && bool::from(sig.as_bytes().ct_eq(want.as_bytes()))
    }

    /// The CSRF token of a session.
    pub fn csrf(&self, cookie: &str) -> String {
        let mut input = b"csrf:".to_vec();
        input.extend_from_slice(cookie.as_bytes());
        hex::encode(mac(&self.secret, &input))
    }

    /// Whether a request the session `cookie` authorises may go on: reads
    /// always, changes only with the session's CSRF token.
    pub fn allows(&self, method: &Method, headers: &HeaderMap, cookie: &str) -> bool {
        if matches!(*method, Method::GET | Method::HEAD) {
            return true;
        }
        let presented = headers.get("x-csrf-token").map(HeaderValue::as_bytes).unwrap_or_default();
        presented.ct_eq(self.csrf(cookie).as_bytes()).into()
    }
}

fn mac(key: &[u8], data: &[u8]) -> [u8; 32] {
    // HMAC takes keys of any length.
    let Ok(mut m) = Hmac::<Sha256>::new_from_slice(key) else { unreachable!("HMAC-SHA256 takes keys of any length") };
    m.update(data);
    m.finalize().into_bytes().into()
}

/// The session cookie a request carries, if any.
pub fn cookie(headers: &HeaderMap) -> Option<&str> {
    headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).find_map(|pair| {
        let (name, value) = pair.trim().split_once('=')?;
        (name == COOKIE).then_some(value)
    })
}

/// The cookie's header. `Secure` when the request came over HTTPS through
/// a proxy that says so (`X-Forwarded-Proto`); runhook itself serves plain
/// HTTP, where a browser would drop a `Secure` cookie (but on localhost).
fn set_cookie(headers: &HeaderMap, value: &str, max_age: i64) -> (header::HeaderName, String) {
    let https = headers.get("x-forwarded-proto").is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"));
    let secure = if https { "; Secure" } else { "" };
    (header::SET_COOKIE, format!("{COOKIE}={value}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age}{secure}"))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignIn {
    api_key: String,
}

/// `POST /ui/session`.
pub(super) async fn sign_in(State(state): State<AppState>, headers: HeaderMap, b: Body) -> Result<Response, ApiError> {
    let bytes = body::read_json(&headers, b, state.limits).await?;
    let req: SignIn = body::json(&bytes, "sign-in")?;
    if !state.key.matches(req.api_key.trim().as_bytes()) {
        return Err(ApiError::Unauthorized);
    }
    let value = state.sessions.issue();
    let csrf = state.sessions.csrf(&value);
    Ok(([set_cookie(&headers, &value, SESSION_SECS)], Json(json!({"csrf": csrf, "expires_in": SESSION_SECS})))
        .into_response())
}

/// `GET /ui/session`: the CSRF token of the session the cookie holds.
pub(super) async fn current(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    match cookie(&headers) {
        Some(c) if state.sessions.valid(c) => Ok(Json(json!({"csrf": state.sessions.csrf(c)}))),
        _ => Err(ApiError::Unauthorized),
    }
}

/// `DELETE /ui/session`: clears the cookie (with the session's CSRF token,
/// so another site cannot sign a user out).
pub(super) async fn sign_out(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    match cookie(&headers) {
        Some(c) if state.sessions.valid(c) && state.sessions.allows(&Method::DELETE, &headers, c) => {
            Ok((StatusCode::NO_CONTENT, [set_cookie(&headers, "", 0)]).into_response())
        }
        _ => Err(ApiError::Unauthorized),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_and_tokens() {
        let s = Sessions::new("rh_0123456789abcdef");
        let c = s.issue();
        assert!(s.valid(&c));
        assert!(!Sessions::new("rh_another_key_0000").valid(&c), "a rotated key ends the session");
        let (claim, sig) = c.rsplit_once('.').unwrap();
        let later = claim.replacen(|ch: char| ch.is_ascii_digit(), "9", 1);
        assert!(!s.valid(&format!("{later}.{sig}")), "an altered expiry is refused");
        let expired = format!("1.{}", claim.split_once('.').unwrap().1);
        let expired = format!("{expired}.{}", hex::encode(mac(&s.secret, expired.as_bytes())));
        assert!(!s.valid(&expired), "an expired cookie is refused");
        assert!(!s.valid("") && !s.valid("a.b") && !s.valid("1.2.3"));

        let mut headers = HeaderMap::new();
        assert!(s.allows(&Method::GET, &headers, &c));
        assert!(!s.allows(&Method::POST, &headers, &c), "a change needs the token");
        headers.insert("x-csrf-token", HeaderValue::from_str(&s.csrf(&c)).unwrap());
        assert!(s.allows(&Method::POST, &headers, &c));
        assert!(!s.allows(&Method::POST, &headers, &s.issue()), "another session's token");

        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, HeaderValue::from_str(&format!("a=b; {COOKIE}={c}; z=1")).unwrap());
        assert_eq!(cookie(&headers), Some(c.as_str()));
    }
}
