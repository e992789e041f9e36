//! The delivery policy, as pure functions: how an attempt is classified and
//! what happens after it.
//!
//! | class | when | next |
//! |---|---|---|
//! | `success` | 2xx within the deadline | delivered |
//! | `server_error` | 5xx within the deadline | retried up to `server_error_retries` times, backoff |
//! | `client_error` | 4xx (429 included) | failed, not retried |
//! | `redirect` | 3xx; never followed | failed, not retried |
//! | `unexpected_status` | 1xx or a status above 599 | failed, not retried |
//! | `timeout` | connected, no complete response headers within the deadline | failed, not retried |
//! | `transport` | no response: DNS, refused, reset, TLS, connect timeout | retried up to `transport_retries` times, backoff |
//! | `forbidden` | the target resolves to a network webhooks may not reach | failed, not retried |
//!
//! The retry counts are per delivery round (since queued or redelivered):
//! attempt `n` may be followed by another when `n` is at most the class's
//! retry count, so a mix of classes never exceeds the larger count + 1
//! attempts. Retry `n` waits `backoff * 2^(n-1)` plus up to a quarter of
//! random jitter, or the response's `Retry-After` when that is longer, never
//! more than `max_backoff`.

use std::time::Duration;

use crate::config::DeliverySettings;

/// How one attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptClass {
    /// 2xx.
    Success(u16),
    /// 5xx within the deadline.
    ServerError(u16),
    /// 4xx.
    ClientError(u16),
    /// 3xx, not followed.
    Redirect(u16),
    /// 1xx, or a status above 599.
    UnexpectedStatus(u16),
    /// Connected, but no complete response headers within the deadline.
    Timeout,
    /// No response at all; the root cause.
    Transport(String),
    /// The target is in a network webhooks may not reach; why.
    Forbidden(String),
}

impl AttemptClass {
    /// The class of a response status.
    pub fn of_status(status: u16) -> Self {
        match status {
            200..=299 => Self::Success(status),
            300..=399 => Self::Redirect(status),
            400..=499 => Self::ClientError(status),
            500..=599 => Self::ServerError(status),
            _ => Self::UnexpectedStatus(status),
        }
    }

    /// The class's name in metrics, logs and the deliveries API.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Success(_) => "success",
            Self::ServerError(_) => "server_error",
            Self::ClientError(_) => "client_error",
            Self::Redirect(_) => "redirect",
            Self::UnexpectedStatus(_) => "unexpected_status",
            Self::Timeout => "timeout",
            Self::Transport(_) => "transport",
            Self::Forbidden(_) => "forbidden",
        }
    }

    /// The response status, when there was one.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Success(s) | Self::ServerError(s) | Self::ClientError(s) | Self::Redirect(s) => Some(*s),
            Self::UnexpectedStatus(s) => Some(*s),
            _ => None,
        }
    }

    /// A sentence for the rule log and the deliveries API.
    pub fn describe(&self, settings: &DeliverySettings) -> String {
        match self {
            Self::Success(s) => format!("HTTP {s}"),
            Self::ServerError(s) => format!("server error: HTTP {s}"),
            Self::ClientError(s) => format!("client error: HTTP {s} (not retried)"),
            Self::Redirect(s) => format!("redirect: HTTP {s} (redirects are not followed)"),
            Self::UnexpectedStatus(s) => format!("unexpected status: HTTP {s} (not retried)"),
            Self::Timeout => format!(
                "timeout: no complete response headers within {} ms (not retried)",
                settings.attempt_timeout.as_millis()
            ),
            Self::Transport(e) => format!("transport error: {e}"),
            Self::Forbidden(e) => format!("forbidden target: {e}"),
        }
    }
}

/// What follows an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Delivered.
    Delivered,
    /// Try again after this delay.
    Retry(Duration),
    /// Give up.
    Fail,
}

/// What follows attempt `attempt` (from 1, in this round) of class `class`;
/// `retry_after` is the response's header, `jitter` a random number in
/// [0, 1).
pub fn next_step(
    settings: &DeliverySettings,
    attempt: u32,
    class: &AttemptClass,
    retry_after: Option<Duration>,
    jitter: f64,
) -> Step {
    let retries = match class {
        AttemptClass::Success(_) => return Step::Delivered,
        AttemptClass::ServerError(_) => settings.server_error_retries,
        AttemptClass::Transport(_) => settings.transport_retries,
        _ => return Step::Fail,
    };
    if attempt > retries {
        return Step::Fail;
    }
    let base = backoff(settings, attempt);
    let jittered = base + base.mul_f64(jitter.clamp(0.0, 1.0) / 4.0);
    Step::Retry(jittered.max(retry_after.unwrap_or_default()).min(settings.max_backoff))
}

/// The delay before retry `n` (from 1), without jitter.
pub fn backoff(settings: &DeliverySettings, n: u32) -> Duration {
    let factor = 2u32.saturating_pow(n.saturating_sub(1));
    settings.backoff.saturating_mul(factor).min(settings.max_backoff)
}

/// A `Retry-After` header's delay: seconds, or an HTTP date.
pub fn parse_retry_after(value: &str, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    (at.with_timezone(&chrono::Utc) - now).to_std().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> DeliverySettings {
        DeliverySettings::default()
    }

    #[test]
    fn classifies_statuses() {
        assert_eq!(AttemptClass::of_status(204).label(), "success");
        assert_eq!(AttemptClass::of_status(302).label(), "redirect");
        assert_eq!(AttemptClass::of_status(429).label(), "client_error");
        assert_eq!(AttemptClass::of_status(503).label(), "server_error");
        assert_eq!(AttemptClass::of_status(101).label(), "unexpected_status");
        assert_eq!(AttemptClass::of_status(700).label(), "unexpected_status");
    }

    #[test]
    fn retries_only_5xx_and_transport_failures_and_only_twice() {
        let s = settings();
        let c500 = AttemptClass::ServerError(500);
        assert_eq!(next_step(&s, 1, &c500, None, 0.0), Step::Retry(Duration::from_millis(500)));
        assert_eq!(next_step(&s, 2, &c500, None, 0.0), Step::Retry(Duration::from_millis(1000)));
        assert_eq!(next_step(&s, 3, &c500, None, 0.0), Step::Fail);
        let refused = AttemptClass::Transport("refused".into());
        assert_eq!(next_step(&s, 2, &refused, None, 0.0), Step::Retry(Duration::from_millis(1000)));
        assert_eq!(next_step(&s, 3, &refused, None, 0.0), Step::Fail);
        for c in [
            AttemptClass::ClientError(404),
            AttemptClass::ClientError(429),
            AttemptClass::Redirect(302),
            AttemptClass::Timeout,
            AttemptClass::Forbidden("loopback".into()),
        ] {
            assert_eq!(next_step(&s, 1, &c, None, 0.0), Step::Fail, "{c:?}");
        }
        assert_eq!(next_step(&s, 1, &AttemptClass::Success(200), None, 0.0), Step::Delivered);
    }

    #[test]
    fn jitter_adds_at_most_a_quarter_and_retry_after_is_honoured_up_to_the_cap() {
        let s = settings();
        let c = AttemptClass::ServerError(503);
        let Step::Retry(d) = next_step(&s, 1, &c, None, 0.999) else { panic!("not retried") };
        assert!(d > Duration::from_millis(620) && d <= Duration::from_millis(625), "{d:?}");
        assert_eq!(next_step(&s, 1, &c, Some(Duration::from_secs(3)), 0.0), Step::Retry(Duration::from_secs(3)));
        assert_eq!(next_step(&s, 1, &c, Some(Duration::from_secs(3600)), 0.0), Step::Retry(Duration::from_secs(60)));
        let now = chrono::DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z").unwrap().with_timezone(&chrono::Utc);
        assert_eq!(parse_retry_after(" 7 ", now), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after("Thu, 01 Jan 2026 00:00:30 GMT", now), Some(Duration::from_secs(30)));
        assert_eq!(parse_retry_after("soon", now), None);
    }
}
