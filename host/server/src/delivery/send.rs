//! One HTTP attempt of a delivery, classified.
//!
//! The client uses rustls, never a proxy, never follows redirects, reuses
//! connections, and resolves names through the SSRF guard. The attempt's
//! deadline covers connecting, sending and the response headers; the
//! response body is ignored: at most [`BODY_DRAIN_BYTES`] are read, for a
//! short while, only so that a small response leaves its connection
//! reusable, then the response is dropped.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::guard::{GuardedResolver, NetworkGuard, Refused};
use super::policy::{AttemptClass, parse_retry_after};
use crate::config::DeliverySettings;
use runhook_core::model::Timestamp;
use runhook_store::OutboxRow;

/// The most of a response body ever read.
pub const BODY_DRAIN_BYTES: usize = 64 * 1024;
/// The longest time spent reading a response body.
const BODY_DRAIN_TIME: Duration = Duration::from_millis(250);

/// Header names a rule may not set, lower case, and why. runhook sets the
/// first group on every delivery (a rule's copy would be sent beside
/// runhook's, or break a signature); the second governs the connection
/// and the message framing, which belong to the HTTP client (a rule's
/// `Host` would reach another virtual host than the URL names, a
/// `Transfer-Encoding` would desynchronise the receiver).
const RESERVED_HEADERS: &[(&str, &str)] = &[
    ("content-type", SET_BY_RUNHOOK),
    ("content-length", SET_BY_RUNHOOK),
    ("user-agent", SET_BY_RUNHOOK),
    ("host", CONNECTION),
    ("connection", CONNECTION),
    ("keep-alive", CONNECTION),
    ("transfer-encoding", CONNECTION),
    ("te", CONNECTION),
    ("trailer", CONNECTION),
    ("upgrade", CONNECTION),
    ("expect", CONNECTION),
    ("content-encoding", CONNECTION),
];
/// Prefixes of reserved names: Standard Webhooks' headers (id, timestamp,
/// signature), runhook's own, and proxies'.
const RESERVED_PREFIXES: &[(&str, &str)] =
    &[("webhook-", SET_BY_RUNHOOK), ("runhook-", SET_BY_RUNHOOK), ("proxy-", CONNECTION)];
const SET_BY_RUNHOOK: &str = "runhook sets it on every delivery";
const CONNECTION: &str = "it governs the connection or the message framing, which the HTTP client owns";

/// Why a webhook may not carry custom header `name`, or `None` when it may.
/// Case-insensitive, as header names are.
pub fn reserved_header(name: &str) -> Option<&'static str> {
    let name = name.to_ascii_lowercase();
    RESERVED_HEADERS
        .iter()
        .find(|(n, _)| *n == name)
        .or_else(|| RESERVED_PREFIXES.iter().find(|(p, _)| name.starts_with(p)))
        .map(|(_, why)| *why)
}

/// What one attempt did.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptReport {
    /// How it ended.
    pub class: AttemptClass,
    /// When it started.
    pub started_at: Timestamp,
    /// How long it took.
    pub duration: Duration,
    /// The response's `Retry-After`, when it had one.
    pub retry_after: Option<Duration>,
}

/// Sends attempts; cheap to clone (one connection pool).
#[derive(Debug, Clone)]
pub struct Sender {
    client: reqwest::Client,
    guard: Arc<NetworkGuard>,
    deadline: Duration,
}

impl Sender {
    /// A sender following `settings`.
    pub fn new(settings: &DeliverySettings) -> Result<Self, reqwest::Error> {
        let guard = Arc::new(NetworkGuard::from_settings(settings));
        let client = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            // A connect slower than half the deadline is a transport
            // failure (retried), not a timeout of a connected receiver.
            .connect_timeout(settings.attempt_timeout / 2)
            .dns_resolver(Arc::new(GuardedResolver::new(guard.clone())))
            .pool_idle_timeout(Duration::from_secs(30))
            .build()?;
        Ok(Self { client, guard, deadline: settings.attempt_timeout })
    }

    /// Makes attempt number `attempt` of `row`.
    pub async fn attempt(&self, row: &OutboxRow, attempt: u32) -> AttemptReport {
        let started_at = Timestamp::now();
        let started = Instant::now();
        let mut retry_after = None;
        let class = match self.guard.check_url(&row.url) {
            Err(refused) => AttemptClass::Forbidden(refused.0),
            Ok(url) => match self.request(url, row, attempt) {
                Err(class) => class,
                Ok(req) => match tokio::time::timeout(self.deadline, req.send()).await {
                    Err(_) => AttemptClass::Timeout,
                    Ok(Err(e)) => classify_error(&e),
                    Ok(Ok(resp)) => {
                        retry_after = resp
                            .headers()
                            .get(reqwest::header::RETRY_AFTER)
                            .and_then(|v| v.to_str().ok())
                            .and_then(|v| parse_retry_after(v, chrono::Utc::now()));
                        let class = AttemptClass::of_status(resp.status().as_u16());
                        drain(resp).await;
                        class
                    }
                },
            },
        };
        AttemptReport { class, started_at, duration: started.elapsed(), retry_after }
    }

    fn request(
        &self,
        url: reqwest::Url,
        row: &OutboxRow,
        attempt: u32,
    ) -> Result<reqwest::RequestBuilder, AttemptClass> {
        let mut req = self
            .client
            .post(url)
            .header("content-type", "application/json")
            .header("user-agent", concat!("runhook/", env!("CARGO_PKG_VERSION")))
            .header("webhook-id", row.id.to_string())
            .header("runhook-attempt", attempt.to_string());
        // Reserved names are refused when a rule is saved; a row stored
        // before that check existed is sent without them.
        for (k, v) in row.headers.iter().filter(|(k, _)| reserved_header(k).is_none()) {
            req = req.header(k, v);
        }
        if !row.signing_secrets.is_empty() {
            let timestamp = chrono::Utc::now().timestamp();
            let id = row.id.to_string();
            // One signature per secret, separated by spaces (Standard
            // Webhooks): while a replaced secret still signs, a receiver
            // holding either one verifies the webhook.
            let signatures: Option<Vec<String>> =
                row.signing_secrets.iter().map(|secret| sign(secret, &id, timestamp, &row.body)).collect();
            // Validated when the rule was saved; a bad secret here means a corrupt row.
            let signatures = signatures.ok_or_else(|| {
                AttemptClass::Transport("the rule's signing secret is not valid whsec_ base64".into())
            })?;
            req = req
                .header("webhook-timestamp", timestamp.to_string())
                .header("webhook-signature", signatures.join(" "));
        }
        Ok(req.body(row.body.clone()))
    }
}

/// Reads a little of the body so a small response frees its connection
/// for reuse; anything longer or slower is cut off by dropping it.
async fn drain(mut resp: reqwest::Response) {
    let mut read = 0;
    let _ = tokio::time::timeout(BODY_DRAIN_TIME, async {
        while read < BODY_DRAIN_BYTES {
            match resp.chunk().await {
                Ok(Some(chunk)) => read += chunk.len(),
                _ => break,
            }
        }
    })
    .await;
}

fn classify_error(e: &reqwest::Error) -> AttemptClass {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(refused) = err.downcast_ref::<Refused>() {
            return AttemptClass::Forbidden(refused.0.clone());
        }
        cur = err.source();
    }
    // The error's own text holds the URL and its secret query; only its
    // causes are kept.
    let root = std::error::Error::source(e).map(root_cause).unwrap_or_else(|| "request failed".into());
    if e.is_timeout() {
        AttemptClass::Transport(format!("connect timeout ({root})"))
    } else {
        AttemptClass::Transport(root)
    }
}

fn root_cause(e: &dyn std::error::Error) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

/// Standard Webhooks signature header for one attempt: `v1,` + base64
/// HMAC-SHA256 over `{id}.{timestamp}.{body}`, keyed by the secret's bytes
/// after `whsec_`. The timestamp is fresh per attempt; the id stays the
/// same across retries and redeliveries.
pub fn sign(secret: &str, id: &str, timestamp: i64, body: &str) -> Option<String> {
    use base64::Engine;
    use hmac::{Hmac, Mac};
    let engine = base64::engine::general_purpose::STANDARD;
    let key = engine.decode(secret.strip_prefix("whsec_")?).ok()?;
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).ok()?;
    mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
    Some(format!("v1,{}", engine.encode(mac.finalize().into_bytes())))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example from the Standard Webhooks specification's test vectors.
    #[test]
    fn signs_like_the_standard_webhooks_reference() {
        let sig = sign(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            r#"{"test": 2432232314}"#,
        );
        assert_eq!(sig.as_deref(), Some("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="));
        assert_eq!(sign("not-a-secret", "id", 1, "{}"), None);
    }

    #[test]
    fn each_secret_adds_a_signature() {
        let target = runhook_core::model::WebhookTarget::new("https://hooks.example.com/x");
        let (new, old) = ("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_c2VjcmV0LXNpZ25pbmcta2V5LTEyMzQ1Njc4");
        let secrets = vec![new.to_string(), old.to_string()];
        let row = OutboxRow::queued(runhook_core::model::RuleId::new_v4(), &target, "{}".into(), secrets);
        let sender = Sender::new(&DeliverySettings::default()).unwrap();
        let url = reqwest::Url::parse(&row.url).unwrap();
        let req = sender.request(url, &row, 1).unwrap().build().unwrap();
        let header = |name: &str| req.headers()[name].to_str().unwrap().to_string();
        let timestamp: i64 = header("webhook-timestamp").parse().unwrap();
        let id = row.id.to_string();
        let expected = [new, old].map(|s| sign(s, &id, timestamp, "{}").unwrap()).join(" ");
        assert_eq!(header("webhook-signature"), expected);
        // Unsigned rows carry no signature headers.
        let unsigned = OutboxRow { signing_secrets: vec![], ..row };
        let url = reqwest::Url::parse(&unsigned.url).unwrap();
        let req = sender.request(url, &unsigned, 1).unwrap().build().unwrap();
        assert!(req.headers().get("webhook-signature").is_none() && req.headers().get("webhook-timestamp").is_none());
    }

    #[test]
    fn reserved_headers_are_known_in_any_case() {
        for name in
            ["Content-Type", "HOST", "transfer-encoding", "Webhook-Signature", "webhook-id", "Proxy-Authorization"]
        {
            assert!(reserved_header(name).is_some(), "{name} should be reserved");
        }
        for name in ["x-api-key", "Authorization", "x-team", "hosts"] {
            assert_eq!(reserved_header(name), None, "{name} should be allowed");
        }
    }

    #[test]
    fn a_stored_reserved_header_is_not_sent() {
        let sender = Sender::new(&DeliverySettings::default()).unwrap();
        // As stored before reserved names were refused.
        let headers = [("Host", "internal.example"), ("X-Team", "a"), ("webhook-id", "forged")];
        let target = runhook_core::model::WebhookTarget {
            headers: Some(headers.into_iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
            ..runhook_core::model::WebhookTarget::new("https://hooks.example.com/x")
        };
        let row = OutboxRow::queued(runhook_core::model::RuleId::new_v4(), &target, "{}".into(), vec![]);
        let url = reqwest::Url::parse(&row.url).unwrap();
        let req = sender.request(url, &row, 1).unwrap().build().unwrap();
        let h = req.headers();
        assert_eq!(h.get("x-team").unwrap(), "a");
        assert!(h.get("host").is_none());
        assert_eq!(h.get_all("webhook-id").iter().collect::<Vec<_>>(), [row.id.to_string().as_str()]);
    }
}
