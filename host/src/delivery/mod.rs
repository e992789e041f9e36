//! Webhook delivery: drains the outbox the rule engine fills.
//!
//! This is the minimal sender: it follows the documented policy (a 5 s
//! deadline per attempt; transport failures and 5xx retried twice with
//! exponential backoff; 4xx, timeouts and redirects not retried; the
//! response body ignored) and records each delivery's outcome in the rule
//! log. Rows stay in the outbox until their outcome is recorded, so a crash
//! re-sends them after restart with the same `webhook-id`.
//!
//! Layering: layer 2; imports `model`, `store`.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::model::Timestamp;
use crate::store::{DeliveryStatus, OutboxRow, Store};

/// How often the outbox is polled when idle.
const POLL: Duration = Duration::from_millis(200);
/// Deliveries in flight at once.
const CONCURRENCY: usize = 16;
/// Total deadline of one attempt.
const ATTEMPT_DEADLINE: Duration = Duration::from_secs(5);
/// Retries after the first attempt, for transport failures and 5xx.
const RETRIES: u32 = 2;
/// First backoff; doubled per retry.
const BACKOFF: Duration = Duration::from_millis(500);

/// How one attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptClass {
    /// 2xx.
    Success(u16),
    /// 5xx within the deadline: retry.
    ServerError(u16),
    /// 4xx: no retry.
    ClientError(u16),
    /// 3xx: not followed, no retry.
    Redirect(u16),
    /// No response within the deadline: no retry.
    Timeout,
    /// No response at all (refused, reset, DNS, TLS): retry.
    Transport(String),
}

impl AttemptClass {
    /// Whether the policy retries after this outcome.
    pub fn retryable(&self) -> bool {
        matches!(self, AttemptClass::ServerError(_) | AttemptClass::Transport(_))
    }

    /// The class's name in metrics.
    pub fn label(&self) -> &'static str {
        match self {
            AttemptClass::Success(_) => "success",
            AttemptClass::ServerError(_) => "server_error",
            AttemptClass::ClientError(_) => "client_error",
            AttemptClass::Redirect(_) => "redirect",
            AttemptClass::Timeout => "timeout",
            AttemptClass::Transport(_) => "transport",
        }
    }

    fn describe(&self) -> String {
        match self {
            AttemptClass::Success(s) => format!("HTTP {s}"),
            AttemptClass::ServerError(s) => format!("server error HTTP {s}"),
            AttemptClass::ClientError(s) => format!("client error HTTP {s} (not retried)"),
            AttemptClass::Redirect(s) => format!("redirect HTTP {s} (not followed)"),
            AttemptClass::Timeout => format!("no response within {}s (not retried)", ATTEMPT_DEADLINE.as_secs()),
            AttemptClass::Transport(e) => format!("transport error: {e}"),
        }
    }
}

/// Runs the delivery worker until `shutdown`.
pub async fn run(store: Arc<dyn Store>, shutdown: CancellationToken) {
    let client = match reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(ATTEMPT_DEADLINE)
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot build the HTTP client; webhooks will not be delivered");
            return;
        }
    };
    let mut in_flight: JoinSet<()> = JoinSet::new();
    let mut busy: std::collections::HashSet<crate::model::DeliveryId> = Default::default();
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel();
    loop {
        while let Ok(id) = done_rx.try_recv() {
            busy.remove(&id);
        }
        let room = CONCURRENCY.saturating_sub(in_flight.len());
        if room > 0 {
            match store.due_deliveries(Timestamp::now(), CONCURRENCY * 2).await {
                Ok(rows) => {
                    let fresh: Vec<OutboxRow> = rows.into_iter().filter(|r| !busy.contains(&r.id)).take(room).collect();
                    for row in fresh {
                        busy.insert(row.id);
                        let (store, client, done) = (store.clone(), client.clone(), done_tx.clone());
                        in_flight.spawn(async move {
                            let id = row.id;
                            deliver(store.as_ref(), &client, row).await;
                            let _ = done.send(id);
                        });
                    }
                }
                Err(e) => tracing::error!(error = %e, "cannot read the outbox"),
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            Some(_) = in_flight.join_next(), if !in_flight.is_empty() => {}
            _ = tokio::time::sleep(POLL) => {}
        }
    }
    // Let attempts in flight finish and record their outcome.
    while in_flight.join_next().await.is_some() {}
}

async fn deliver(store: &dyn Store, client: &reqwest::Client, row: OutboxRow) {
    let attempt = row.attempts + 1;
    let started = std::time::Instant::now();
    let class = attempt_once(client, &row, attempt).await;
    metrics::histogram!("runhook_delivery_attempt_duration_seconds").record(started.elapsed().as_secs_f64());
    metrics::counter!("runhook_delivery_attempts_total", "class" => class.label()).increment(1);
    let status = match &class {
        AttemptClass::Success(_) => DeliveryStatus::Delivered,
        c if c.retryable() && attempt <= RETRIES => {
            let wait = BACKOFF * 2u32.pow(attempt - 1);
            let jitter = Duration::from_millis(rand::random::<u64>() % (wait.as_millis() as u64 / 4 + 1));
            let at = chrono::Utc::now() + chrono::Duration::from_std(wait + jitter).unwrap_or_default();
            DeliveryStatus::Retry { at: Timestamp::from_datetime(at), error: c.describe() }
        }
        c => DeliveryStatus::Failed(c.describe()),
    };
    let outcome = match &status {
        DeliveryStatus::Delivered => Some("delivered"),
        DeliveryStatus::Failed(_) => Some("failed"),
        DeliveryStatus::Retry { .. } => None,
    };
    if let Some(outcome) = outcome {
        metrics::counter!("runhook_deliveries_total", "outcome" => outcome).increment(1);
        let age = chrono::Utc::now().signed_duration_since(row.created_at.as_datetime());
        metrics::histogram!("runhook_delivery_latency_seconds").record(age.num_milliseconds().max(0) as f64 / 1e3);
    }
    tracing::info!(delivery = %row.id, rule = %row.rule_id, attempt, outcome = %class.describe(), "webhook attempt");
    if let Err(e) = store.record_delivery(row.id, attempt, status).await {
        tracing::error!(delivery = %row.id, error = %e, "cannot record the delivery outcome; it will be retried");
    }
}

/// Standard Webhooks signature headers for one attempt: `webhook-timestamp`
/// (seconds) and `webhook-signature` (`v1,` + base64 HMAC-SHA256 over
/// `{id}.{timestamp}.{body}`, keyed by the secret's bytes after `whsec_`).
/// The timestamp is fresh per attempt; the id stays the same across retries.
pub fn sign(secret: &str, id: &str, timestamp: i64, body: &str) -> Option<String> {
    use base64::Engine;
    use hmac::{Hmac, Mac};
    let engine = base64::engine::general_purpose::STANDARD;
    let key = engine.decode(secret.strip_prefix("whsec_")?).ok()?;
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).ok()?;
    mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
    Some(format!("v1,{}", engine.encode(mac.finalize().into_bytes())))
}

async fn attempt_once(client: &reqwest::Client, row: &OutboxRow, attempt: u32) -> AttemptClass {
    let mut req = client
        .post(&row.url)
        .timeout(ATTEMPT_DEADLINE)
        .header("content-type", "application/json")
        .header("user-agent", concat!("runhook/", env!("CARGO_PKG_VERSION")))
        .header("webhook-id", row.id.to_string())
        .header("runhook-attempt", attempt.to_string());
    for (k, v) in &row.headers {
        req = req.header(k, v);
    }
    if let Some(secret) = &row.signing_secret {
        let timestamp = chrono::Utc::now().timestamp();
        match sign(secret, &row.id.to_string(), timestamp, &row.body) {
            Some(signature) => {
                req = req.header("webhook-timestamp", timestamp.to_string()).header("webhook-signature", signature);
            }
            // Validated when the rule was saved; a bad secret here means a corrupt row.
            None => return AttemptClass::Transport("the rule's signing secret is not valid whsec_ base64".into()),
        }
    }
    match req.body(row.body.clone()).send().await {
        Ok(resp) => {
            let s = resp.status().as_u16();
            // The body is ignored; dropping the response closes it.
            match s {
                200..=299 => AttemptClass::Success(s),
                300..=399 => AttemptClass::Redirect(s),
                400..=499 => AttemptClass::ClientError(s),
                _ => AttemptClass::ServerError(s),
            }
        }
        Err(e) if e.is_timeout() => AttemptClass::Timeout,
        Err(e) => AttemptClass::Transport(root_cause(&e)),
    }
}

fn root_cause(e: &dyn std::error::Error) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
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
}
