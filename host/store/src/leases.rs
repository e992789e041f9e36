//! Leases: which replica runs which rule's cycles, and which runs the
//! cluster's periodic work, when several share one database.
//!
//! [`LeaseStore`] is the concern. A replica heartbeats; the rules are
//! spread over the replicas alive, each holding about its share
//! ([`fair_share`]); a lease lasts `ttl` unless renewed, so the rules of a
//! replica that died are taken over once its leases expire.
//!
//! A lease is fenced: taking one bumps the rule's epoch, and a cycle's
//! commit names the lease it ran under ([`crate::CycleCommit::lease`]) and
//! is refused unless the rule is still held under it. A replica that was
//! paused or cut off past its lease, and resumes mid-cycle, commits
//! nothing: another owner has a newer epoch. Clocks decide only how soon a
//! takeover happens (Postgres uses its own `now()`), never whether two
//! owners commit.

use std::time::Duration;

use async_trait::async_trait;

use runhook_core::model::RuleId;

use crate::StoreError;

/// One replica's hold on one rule.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Lease {
    /// The rule.
    pub rule: RuleId,
    /// The replica holding it.
    pub owner: String,
    /// Bumped by every take: the fencing token.
    pub epoch: i64,
}

/// Leases on rules and on the cluster's singletons.
#[async_trait]
pub trait LeaseStore: Send + Sync + std::fmt::Debug {
    /// Marks replica `me` alive for `ttl`, with the ids of the keys its
    /// store seals and opens with (current first); how many replicas are
    /// alive, `me` included.
    async fn heartbeat(&self, me: &str, ttl: Duration) -> Result<usize, StoreError>;

    /// In one transaction: renews the rule leases `me` holds for `ttl`,
    /// gives up those past `want`, and takes free or expired ones until it
    /// holds `want`. The leases held after.
    async fn balance_leases(&self, me: &str, want: usize, ttl: Duration) -> Result<Vec<Lease>, StoreError>;

    /// Takes or renews the singleton `name` (work done once across the
    /// cluster) for `ttl`, unless another replica holds it; whether `me` does.
    async fn hold_singleton(&self, name: &str, me: &str, ttl: Duration) -> Result<bool, StoreError>;

    /// Gives up every lease `me` holds, and its heartbeat (a replica stopping
    /// cleanly, so others take over at once).
    async fn leave(&self, me: &str) -> Result<(), StoreError>;

    /// The live replicas, each with the key ids of its last heartbeat
    /// (what a key rotation waits on).
    async fn replica_keys(&self) -> Result<Vec<(String, Vec<String>)>, StoreError>;
}

/// How many of `rules` each of `replicas` live replicas holds: an even
/// share, rounded up, so that together they hold them all.
pub fn fair_share(rules: usize, replicas: usize) -> usize {
    rules.div_ceil(replicas.max(1))
}
