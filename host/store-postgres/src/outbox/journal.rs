//! The delivery worker's writes: the records of attempts and the claims
//! for the next ones, in one transaction per group. The decisions are the
//! store contract's (`runhook_store::claim::claim_step`); the statements
//! are here, each one statement for the whole group.
//!
//! Claims lock the rows they decide on and skip rows another worker (of
//! this replica or another) is deciding on at that moment: such a row is
//! a miss, as a row with a live claim is. They then lock the rows of the
//! endpoints they would claim for (in order, so two claimers never
//! deadlock), count those endpoints' live claims, and claim only up to
//! `per_endpoint`: the bound holds across every replica, and a dead
//! replica's claims stop counting when they expire.

use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::{Postgres, Transaction};
use uuid::Uuid;

use runhook_core::model::{DeliveryId, RunId};
use runhook_store::claim::{ClaimState, ClaimStep, INTERRUPTED_ERROR, claim_step};
use runhook_store::outbox::failed_outcome;
use runhook_store::rules::outcome_json;
use runhook_store::{Claim, ClaimOutcome, ClaimTerms, ClaimToken, DeliveryRecord, DeliveryStatus, StoreError};

use crate::error::db;
use crate::rows::{at, get, opt_time, time};

/// Attempts, each numbered after its delivery's history (a redelivery
/// starts its attempts at 0 again, its history does not).
const INSERT_ATTEMPTS: &str = "INSERT INTO delivery_attempts \
     (delivery_id, attempt, started_at, duration_ms, class, status_code, error) \
     SELECT v.id, COALESCE((SELECT max(a.attempt) FROM delivery_attempts a WHERE a.delivery_id = v.id), 0) + 1, \
     v.started, v.duration, v.class, v.code, v.error \
     FROM UNNEST($1::uuid[], $2::timestamptz[], $3::bigint[], $4::text[], $5::int[], $6::text[]) \
     AS v(id, started, duration, class, code, error)";

/// The state each attempt leaves its delivery in, under its claim (which it clears).
const UPDATE_STATES: &str = "UPDATE delivery_state s SET status = v.status, attempts = v.attempts, \
     next_attempt_at = v.next, finished_at = v.finished, last_error = v.error, \
     claim_token = NULL, claimed_at = NULL, claimed_until = NULL \
     FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::int[], $5::timestamptz[], $6::timestamptz[], $7::text[]) \
     AS v(id, token, status, attempts, next, finished, error) \
     WHERE s.id = v.id AND s.claim_token = v.token RETURNING s.id";

/// Finished deliveries' outcomes in the log lines of the runs they carried.
const UPDATE_LOGS: &str = "UPDATE rule_runs r SET webhooks = v.outcome \
     FROM UNNEST($1::uuid[], $2::uuid[], $3::text[]) AS v(rule, run, outcome) \
     WHERE r.rule_id = v.rule AND r.run_id = v.run";

/// What a claim decides from, locked; rows being decided on elsewhere are skipped.
const CLAIM_STATES: &str = "SELECT s.id, s.status, s.next_attempt_at, s.attempts, s.claim_token, s.claimed_at, \
     s.claimed_until, s.rule_id, s.endpoint, o.run_ids FROM delivery_state s JOIN outbox o ON o.id = s.id \
     WHERE s.id = ANY($1) ORDER BY s.id FOR UPDATE OF s SKIP LOCKED";

/// Claims taken (the attempts count any interrupted one).
const TAKE_CLAIMS: &str = "UPDATE delivery_state s SET claim_token = v.token, claimed_at = $5, claimed_until = v.until, \
     attempts = v.attempts FROM UNNEST($1::uuid[], $2::uuid[], $3::timestamptz[], $4::int[]) \
     AS v(id, token, until, attempts) WHERE s.id = v.id";

/// Deliveries given up after interrupted attempts.
const GIVE_UP: &str = "UPDATE delivery_state SET status = 'failed', attempts = $2, finished_at = $3, last_error = $4, \
     claim_token = NULL, claimed_at = NULL, claimed_until = NULL WHERE id = $1";

/// Attempt rows, column by column, for [`INSERT_ATTEMPTS`].
#[derive(Default)]
struct Attempts {
    id: Vec<Uuid>,
    started: Vec<DateTime<Utc>>,
    duration: Vec<i64>,
    class: Vec<String>,
    code: Vec<Option<i32>>,
    error: Vec<Option<String>>,
}

impl Attempts {
    fn push(
        &mut self,
        id: Uuid,
        started: DateTime<Utc>,
        duration: i64,
        class: &str,
        code: Option<i32>,
        error: Option<&str>,
    ) {
        self.id.push(id);
        self.started.push(started);
        self.duration.push(duration);
        self.class.push(class.to_string());
        self.code.push(code);
        self.error.push(error.map(str::to_string));
    }

    async fn insert(self, tx: &mut Transaction<'static, Postgres>) -> Result<(), StoreError> {
        if self.id.is_empty() {
            return Ok(());
        }
        sqlx::query(INSERT_ATTEMPTS)
            .bind(self.id)
            .bind(self.started)
            .bind(self.duration)
            .bind(self.class)
            .bind(self.code)
            .bind(self.error)
            .execute(&mut **tx)
            .await
            .map_err(db)?;
        Ok(())
    }
}

/// Log lines to update, column by column, for [`UPDATE_LOGS`].
#[derive(Default)]
struct Logs {
    rule: Vec<Uuid>,
    run: Vec<Uuid>,
    outcome: Vec<String>,
}

impl Logs {
    fn push(&mut self, rule: Uuid, runs: &[RunId], outcome: &str) {
        for run in runs {
            self.rule.push(rule);
            self.run.push(run.0);
            self.outcome.push(outcome.to_string());
        }
    }

    async fn update(self, tx: &mut Transaction<'static, Postgres>) -> Result<(), StoreError> {
        if self.rule.is_empty() {
            return Ok(());
        }
        sqlx::query(UPDATE_LOGS)
            .bind(self.rule)
            .bind(self.run)
            .bind(self.outcome)
            .execute(&mut **tx)
            .await
            .map_err(db)?;
        Ok(())
    }
}

/// Records `records`; returns the ids of those refused (no live claim with
/// their token).
pub(super) async fn record(
    tx: &mut Transaction<'static, Postgres>,
    records: &[DeliveryRecord],
    now: DateTime<Utc>,
) -> Result<Vec<DeliveryId>, StoreError> {
    if records.is_empty() {
        return Ok(Vec::new());
    }
    let (mut id, mut token, mut status, mut attempts, mut next, mut finished, mut error) =
        (vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
    for r in records {
        let (s, n, e) = match &r.status {
            DeliveryStatus::Delivered => ("delivered", now, None),
            DeliveryStatus::Failed(msg) => ("failed", now, Some(msg.clone())),
            DeliveryStatus::Retry { at: when, error } => ("pending", at(*when), Some(error.clone())),
        };
        id.push(r.id.0);
        token.push(r.claim.0);
        status.push(s);
        attempts.push(i32::try_from(r.attempts).unwrap_or(i32::MAX));
        next.push(n);
        finished.push((s != "pending").then_some(now));
        error.push(e);
    }
    let kept: Vec<Uuid> = sqlx::query_scalar(UPDATE_STATES)
        .bind(id)
        .bind(token)
        .bind(status)
        .bind(attempts)
        .bind(next)
        .bind(finished)
        .bind(error)
        .fetch_all(&mut **tx)
        .await
        .map_err(db)?;
    let (mut rows, mut logs, mut refused) = (Attempts::default(), Logs::default(), Vec::new());
    for r in records {
        if !kept.contains(&r.id.0) {
            refused.push(r.id);
            continue;
        }
        let a = &r.attempt;
        let duration = i64::try_from(a.duration_ms).unwrap_or(i64::MAX);
        rows.push(r.id.0, at(a.started_at), duration, &a.class, a.status_code.map(i32::from), a.error.as_deref());
        if let Some(outcome) = r.log_outcome().and_then(|o| outcome_json(&Some(o))) {
            logs.push(r.rule_id.0, &r.run_ids, &outcome);
        }
    }
    rows.insert(tx).await?;
    logs.update(tx).await?;
    Ok(refused)
}

/// A delivery's stored claim state, with what giving it up needs.
struct Stored {
    id: Uuid,
    endpoint: String,
    state: ClaimState,
    rule_id: Uuid,
    run_ids: String,
}

fn stored(row: &PgRow) -> Result<Stored, StoreError> {
    let claim =
        match (get::<Option<Uuid>>(row, "claim_token")?, opt_time(row, "claimed_at")?, opt_time(row, "claimed_until")?)
        {
            (Some(token), Some(started), Some(until)) => Some((started, Claim { token: ClaimToken(token), until })),
            _ => None,
        };
    Ok(Stored {
        id: get(row, "id")?,
        endpoint: get(row, "endpoint")?,
        state: ClaimState {
            pending: get::<String>(row, "status")? == "pending",
            next_attempt_at: time(row, "next_attempt_at")?,
            attempts: u32::try_from(get::<i32>(row, "attempts")?).unwrap_or(0),
            claim,
        },
        rule_id: get(row, "rule_id")?,
        run_ids: get(row, "run_ids")?,
    })
}

/// Claims `ids` under `terms`; one outcome per id, in order.
pub(super) async fn claim(
    tx: &mut Transaction<'static, Postgres>,
    ids: &[DeliveryId],
    terms: &ClaimTerms,
) -> Result<Vec<ClaimOutcome>, StoreError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let wanted: Vec<Uuid> = ids.iter().map(|i| i.0).collect();
    let rows = sqlx::query(CLAIM_STATES).bind(&wanted).fetch_all(&mut **tx).await.map_err(db)?;
    let found = rows.iter().map(stored).collect::<Result<Vec<_>, _>>()?;
    let now = at(terms.now);
    let mut room = endpoint_room(tx, &found, terms).await?;
    let (mut take_id, mut take_token, mut take_until, mut take_attempts) = (vec![], vec![], vec![], vec![]);
    let (mut interrupted, mut logs) = (Attempts::default(), Logs::default());
    let mut outcomes = std::collections::HashMap::new();
    for s in &found {
        let outcome = match claim_step(&s.state, terms) {
            ClaimStep::Miss => ClaimOutcome::Missed,
            ClaimStep::Take { .. } if room.get(&s.endpoint).is_some_and(|n| *n == 0) => ClaimOutcome::Busy,
            ClaimStep::Take { claim, interrupted: cut, attempts } => {
                if let Some(n) = room.get_mut(&s.endpoint) {
                    *n -= 1;
                }
                if let Some(started) = cut {
                    interrupted.push(s.id, at(started), 0, "interrupted", None, Some(INTERRUPTED_ERROR));
                }
                take_id.push(s.id);
                take_token.push(claim.token.0);
                take_until.push(at(claim.until));
                take_attempts.push(i32::try_from(attempts).unwrap_or(i32::MAX));
                ClaimOutcome::Claimed { claim, attempts }
            }
            ClaimStep::GiveUp { interrupted: started, attempts } => {
                interrupted.push(s.id, at(started), 0, "interrupted", None, Some(INTERRUPTED_ERROR));
                sqlx::query(GIVE_UP)
                    .bind(s.id)
                    .bind(i32::try_from(attempts).unwrap_or(i32::MAX))
                    .bind(now)
                    .bind(INTERRUPTED_ERROR)
                    .execute(&mut **tx)
                    .await
                    .map_err(db)?;
                if let Some(outcome) =
                    outcome_json(&Some(failed_outcome(DeliveryId(s.id), attempts, INTERRUPTED_ERROR)))
                {
                    let runs: Vec<RunId> =
                        serde_json::from_str(&s.run_ids).map_err(|e| StoreError::corrupt("outbox.run_ids", e))?;
                    logs.push(s.rule_id, &runs, &outcome);
                }
                ClaimOutcome::GaveUp
            }
        };
        outcomes.insert(s.id, outcome);
    }
    interrupted.insert(tx).await?;
    logs.update(tx).await?;
    if !take_id.is_empty() {
        sqlx::query(TAKE_CLAIMS)
            .bind(take_id)
            .bind(take_token)
            .bind(take_until)
            .bind(take_attempts)
            .bind(now)
            .execute(&mut **tx)
            .await
            .map_err(db)?;
    }
    Ok(wanted.iter().map(|id| outcomes.remove(id).unwrap_or(ClaimOutcome::Missed)).collect())
}

/// How many more claims each endpoint of `found` may take, its row locked
/// until the transaction ends.
async fn endpoint_room(
    tx: &mut Transaction<'static, Postgres>,
    found: &[Stored],
    terms: &ClaimTerms,
) -> Result<std::collections::HashMap<String, u32>, StoreError> {
    let mut endpoints: Vec<&str> = found.iter().map(|s| s.endpoint.as_str()).collect();
    endpoints.sort_unstable();
    endpoints.dedup();
    if endpoints.is_empty() || terms.per_endpoint == u32::MAX {
        return Ok(std::collections::HashMap::new());
    }
    sqlx::query("INSERT INTO endpoints (endpoint) SELECT unnest($1::text[]) ON CONFLICT DO NOTHING")
        .bind(&endpoints)
        .execute(&mut **tx)
        .await
        .map_err(db)?;
    sqlx::query("SELECT endpoint FROM endpoints WHERE endpoint = ANY($1) ORDER BY endpoint FOR UPDATE")
        .bind(&endpoints)
        .execute(&mut **tx)
        .await
        .map_err(db)?;
    let live: Vec<(String, i64)> = sqlx::query_as(
        "SELECT endpoint, count(*) FROM delivery_state WHERE endpoint = ANY($1) AND claim_token IS NOT NULL \
         AND claimed_until >= $2 GROUP BY endpoint",
    )
    .bind(&endpoints)
    .bind(at(terms.now))
    .fetch_all(&mut **tx)
    .await
    .map_err(db)?;
    let live: std::collections::HashMap<String, i64> = live.into_iter().collect();
    Ok(endpoints
        .into_iter()
        .map(|e| {
            let used = u32::try_from(live.get(e).copied().unwrap_or(0)).unwrap_or(u32::MAX);
            (e.to_string(), terms.per_endpoint.saturating_sub(used))
        })
        .collect())
}
