//! Claims: how a delivery is one worker's for one attempt, and how an
//! attempt cut short by a stopped worker is found and counted.
//!
//! [`claim_step`] decides, for every backend, what claiming a delivery in a
//! given state does; a backend stores the outcome ([`crate::OutboxStore::claim_deliveries`]).

use runhook_core::model::Timestamp;

/// A delivery's claim: held by one worker for one attempt, from just
/// before its first request until its record.
///
/// - Only a pending delivery that is due and holds no live claim can be
///   claimed; a live claim keeps it out of every worker's due reads, so two
///   workers never send one attempt of a delivery at once.
/// - A record is accepted only with the token of the delivery's claim, and
///   clears the claim (a retry is claimed again at its time).
/// - A claim expires at `until`, set past the longest an attempt can take:
///   a claim still held then means the worker stopped during the attempt.
///   The next claim counts that attempt: it is listed in the delivery's
///   history as `interrupted`, counts toward the retry limit, and the next
///   attempt's number (its `runhook-attempt` header) follows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claim {
    /// The token that records of this attempt must carry.
    pub token: ClaimToken,
    /// When the claim expires.
    pub until: Timestamp,
}

/// A claim's token: fresh for every claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClaimToken(pub uuid::Uuid);

impl ClaimToken {
    /// A fresh token.
    pub fn new() -> Self {
        Self(uuid::Uuid::new_v4())
    }
}

impl Default for ClaimToken {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Display for ClaimToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

/// The terms of a claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClaimTerms {
    /// The time of the claim (deliveries due by then can be claimed).
    pub now: Timestamp,
    /// How long a claim lasts: longer than an attempt can take.
    pub lease: std::time::Duration,
    /// Attempts (interrupted ones included) after which a delivery whose
    /// attempt was interrupted again is given up instead of claimed.
    pub give_up_after: u32,
    /// Live claims an endpoint may have at once, across every worker on the
    /// store (every replica): a claim past it is [`ClaimOutcome::Busy`].
    pub per_endpoint: u32,
}

/// What claiming one delivery did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimOutcome {
    /// Claimed: make attempt `attempts + 1` under `claim`.
    Claimed {
        /// The claim.
        claim: Claim,
        /// Attempts made so far, interrupted ones included.
        attempts: u32,
    },
    /// Its attempts were interrupted until the limit: it is failed now.
    GaveUp,
    /// Not claimable: claimed by another worker, not due, finished or gone.
    Missed,
    /// Claimable, but its endpoint has `per_endpoint` live claims already
    /// (other workers are sending to it): try it later.
    Busy,
}

/// A delivery's claim as stored, for [`claim_step`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimState {
    /// `pending`, `delivered` or `failed`.
    pub pending: bool,
    /// When its next attempt is due.
    pub next_attempt_at: Timestamp,
    /// Attempts made so far.
    pub attempts: u32,
    /// Its claim, when one is held (live or expired).
    pub claim: Option<(Timestamp, Claim)>,
}

/// What a backend does to claim one delivery, decided once for all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimStep {
    /// Leave it (see [`ClaimOutcome::Missed`]).
    Miss,
    /// Take a new claim; first, when `interrupted` holds the expired
    /// claim's start, record that attempt as interrupted (`attempts` is the
    /// count after it).
    Take {
        /// The claim to store.
        claim: Claim,
        /// When the interrupted attempt started, if there was one.
        interrupted: Option<Timestamp>,
        /// Attempts after counting it.
        attempts: u32,
    },
    /// Record the interrupted attempt (it started at the given time) and
    /// fail the delivery: it reached the limit.
    GiveUp {
        /// When the interrupted attempt started.
        interrupted: Timestamp,
        /// Attempts after counting it.
        attempts: u32,
    },
}

/// The error a delivery given up after interrupted attempts carries.
pub const INTERRUPTED_ERROR: &str = "the attempt was interrupted (the worker stopped during it)";

/// Decides what claiming a delivery in `state` under `terms` does.
pub fn claim_step(state: &ClaimState, terms: &ClaimTerms) -> ClaimStep {
    if !state.pending || state.next_attempt_at > terms.now {
        return ClaimStep::Miss;
    }
    let fresh = || Claim {
        token: ClaimToken::new(),
        until: Timestamp::from_datetime(
            terms.now.as_datetime() + chrono::Duration::from_std(terms.lease).unwrap_or(chrono::Duration::MAX),
        ),
    };
    match state.claim {
        Some((_, live)) if live.until >= terms.now => ClaimStep::Miss,
        Some((started, _)) => {
            let attempts = state.attempts.saturating_add(1);
            if attempts >= terms.give_up_after {
                ClaimStep::GiveUp { interrupted: started, attempts }
            } else {
                ClaimStep::Take { claim: fresh(), interrupted: Some(started), attempts }
            }
        }
        None => ClaimStep::Take { claim: fresh(), interrupted: None, attempts: state.attempts },
    }
}
