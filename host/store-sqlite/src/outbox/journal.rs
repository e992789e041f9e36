//! The delivery worker's writes, on the store's own rusqlite connection
//! (see `crate::direct`): claims, and the records of attempts. Each batch
//! is one transaction; the decisions are the store contract's
//! (`runhook_store::claim::claim_step`), the statements are here.

use runhook_core::model::{DeliveryId, RunId, Timestamp};
use runhook_store::claim::{ClaimState, ClaimStep, INTERRUPTED_ERROR, claim_step};
use runhook_store::outbox::failed_outcome;
use runhook_store::rules::outcome_json;
use runhook_store::{Claim, ClaimOutcome, ClaimTerms, ClaimToken, DeliveryRecord, DeliveryStatus, StoreError};

use crate::error::db;
use crate::rows::{parse_id, req_ts};

/// Records one attempt, numbered after its delivery's history (a
/// redelivery starts its attempts at 0 again, its history does not).
const INSERT_ATTEMPT: &str = "INSERT INTO delivery_attempts \
     (delivery_id, attempt, started_at, duration_ms, class, status_code, error) \
     VALUES (?1, COALESCE((SELECT MAX(attempt) FROM delivery_attempts WHERE delivery_id = ?1), 0) + 1, \
     ?2, ?3, ?4, ?5, ?6)";

/// The state an attempt leaves its delivery in, under its claim (which it clears).
const UPDATE_STATE: &str = "UPDATE delivery_state \
     SET status = ?2, attempts = ?3, next_attempt_at = ?4, finished_at = ?5, last_error = ?6, \
     claim_token = NULL, claimed_at = NULL, claimed_until = NULL WHERE id = ?1 AND claim_token = ?7";

/// What a claim decides from (the narrow state table only).
const CLAIM_STATE: &str = "SELECT status, next_attempt_at, attempts, claim_token, claimed_at, claimed_until, rule_id \
     FROM delivery_state WHERE id = ?1";

/// The runs a delivery carries (for the log of one given up).
const RUN_IDS: &str = "SELECT run_ids FROM outbox WHERE id = ?1";

/// A claim taken (the attempts count any interrupted one).
const TAKE_CLAIM: &str = "UPDATE delivery_state SET claim_token = ?2, claimed_at = ?3, claimed_until = ?4, attempts = ?5 \
     WHERE id = ?1";

/// A delivery given up after interrupted attempts.
const GIVE_UP: &str = "UPDATE delivery_state SET status = 'failed', attempts = ?2, finished_at = ?3, last_error = ?4, \
     claim_token = NULL, claimed_at = NULL, claimed_until = NULL WHERE id = ?1";

/// A finished delivery's outcome in the log line of a run it carried.
const UPDATE_LOG: &str = "UPDATE rule_runs SET webhooks = ?3 WHERE rule_id = ?1 AND run_id = ?2";

/// One attempt and the state it leaves its delivery in, as bound values.
pub(super) struct RecordValues {
    claim: String,
    id: String,
    attempts: i64,
    status: &'static str,
    next: String,
    finished: Option<String>,
    error: Option<String>,
    started_at: String,
    duration_ms: i64,
    class: String,
    status_code: Option<i64>,
    attempt_error: Option<String>,
    rule_id: String,
    run_ids: Vec<String>,
    /// The rule log's outcome, when the delivery finished.
    outcome: Option<String>,
}

impl RecordValues {
    pub(super) fn new(r: &DeliveryRecord, now: &str) -> Self {
        let (status, next, error) = match &r.status {
            DeliveryStatus::Delivered => ("delivered", now.to_string(), None),
            DeliveryStatus::Failed(msg) => ("failed", now.to_string(), Some(msg.clone())),
            DeliveryStatus::Retry { at, error } => ("pending", at.to_naive_string(), Some(error.clone())),
        };
        let a = &r.attempt;
        Self {
            id: r.id.to_string(),
            claim: r.claim.to_string(),
            attempts: i64::from(r.attempts),
            status,
            next,
            finished: (status != "pending").then(|| now.to_string()),
            error,
            started_at: a.started_at.to_naive_string(),
            duration_ms: i64::try_from(a.duration_ms).unwrap_or(i64::MAX),
            class: a.class.clone(),
            status_code: a.status_code.map(i64::from),
            attempt_error: a.error.clone(),
            rule_id: r.rule_id.to_string(),
            run_ids: r.run_ids.iter().map(ToString::to_string).collect(),
            outcome: r.log_outcome().and_then(|o| outcome_json(&Some(o))),
        }
    }
}

/// Records `values`, then claims `ids` under `terms`, in one transaction
/// (either may be empty); returns the ids of the records refused (no live
/// claim with their token) and the claims' outcomes.
pub(super) fn record_and_claim(
    conn: &mut rusqlite::Connection,
    values: &[RecordValues],
    ids: &[DeliveryId],
    terms: &ClaimTerms,
) -> Result<(Vec<String>, Vec<ClaimOutcome>), StoreError> {
    let tx = conn.transaction().map_err(db)?;
    let refused = record(&tx, values)?;
    let claimed = claim(&tx, ids, terms)?;
    tx.commit().map_err(db)?;
    Ok((refused, claimed))
}

fn record(tx: &rusqlite::Transaction<'_>, values: &[RecordValues]) -> Result<Vec<String>, StoreError> {
    let mut refused = Vec::new();
    {
        let mut attempt = tx.prepare_cached(INSERT_ATTEMPT).map_err(db)?;
        let mut state = tx.prepare_cached(UPDATE_STATE).map_err(db)?;
        let mut log = tx.prepare_cached(UPDATE_LOG).map_err(db)?;
        for v in values {
            let changed =
                state.execute((&v.id, v.status, v.attempts, &v.next, &v.finished, &v.error, &v.claim)).map_err(db)?;
            if changed == 0 {
                refused.push(v.id.clone());
                continue;
            }
            let a = (&v.id, &v.started_at, v.duration_ms, &v.class, v.status_code, &v.attempt_error);
            attempt.execute(a).map_err(db)?;
            if let Some(outcome) = &v.outcome {
                for run in &v.run_ids {
                    log.execute((&v.rule_id, run, outcome)).map_err(db)?;
                }
            }
        }
    }
    Ok(refused)
}

/// A delivery's claim state as [`CLAIM_STATE`] reads it.
struct Stored {
    state: ClaimState,
    rule_id: String,
}

fn stored(tx: &rusqlite::Transaction<'_>, id: &str) -> Result<Option<Stored>, StoreError> {
    let mut q = tx.prepare_cached(CLAIM_STATE).map_err(db)?;
    let mut rows = q.query([id]).map_err(db)?;
    let Some(row) = rows.next().map_err(db)? else { return Ok(None) };
    let text = |i: usize| row.get::<_, Option<String>>(i).map_err(db);
    let status: String = row.get(0).map_err(db)?;
    let claim = match (text(3)?, text(4)?, text(5)?) {
        (Some(token), Some(at), Some(until)) => Some((
            req_ts(Some(at), "delivery_state.claimed_at")?,
            Claim {
                token: ClaimToken(parse_id(&token, "delivery_state.claim_token")?),
                until: req_ts(Some(until), "delivery_state.claimed_until")?,
            },
        )),
        _ => None,
    };
    Ok(Some(Stored {
        state: ClaimState {
            pending: status == "pending",
            next_attempt_at: req_ts(text(1)?, "delivery_state.next_attempt_at")?,
            attempts: u32::try_from(row.get::<_, i64>(2).map_err(db)?).unwrap_or(0),
            claim,
        },
        rule_id: row.get(6).map_err(db)?,
    }))
}

fn claim(
    tx: &rusqlite::Transaction<'_>,
    ids: &[DeliveryId],
    terms: &ClaimTerms,
) -> Result<Vec<ClaimOutcome>, StoreError> {
    let now = terms.now.to_naive_string();
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        let key = id.to_string();
        let Some(s) = stored(tx, &key)? else {
            out.push(ClaimOutcome::Missed);
            continue;
        };
        let interrupted = |started: Timestamp| -> Result<(), StoreError> {
            let mut attempt = tx.prepare_cached(INSERT_ATTEMPT).map_err(db)?;
            let row = (&key, started.to_naive_string(), 0_i64, "interrupted", None::<i64>, INTERRUPTED_ERROR);
            attempt.execute(row).map_err(db)?;
            Ok(())
        };
        match claim_step(&s.state, terms) {
            ClaimStep::Miss => out.push(ClaimOutcome::Missed),
            ClaimStep::Take { claim, interrupted: cut, attempts } => {
                if let Some(started) = cut {
                    interrupted(started)?;
                }
                let mut take = tx.prepare_cached(TAKE_CLAIM).map_err(db)?;
                let row = (&key, claim.token.to_string(), &now, claim.until.to_naive_string(), i64::from(attempts));
                take.execute(row).map_err(db)?;
                out.push(ClaimOutcome::Claimed { claim, attempts });
            }
            ClaimStep::GiveUp { interrupted: started, attempts } => {
                interrupted(started)?;
                tx.prepare_cached(GIVE_UP)
                    .map_err(db)?
                    .execute((&key, i64::from(attempts), &now, INTERRUPTED_ERROR))
                    .map_err(db)?;
                if let Some(outcome) = outcome_json(&Some(failed_outcome(*id, attempts, INTERRUPTED_ERROR))) {
                    let text: String =
                        tx.prepare_cached(RUN_IDS).map_err(db)?.query_row([&key], |r| r.get(0)).map_err(db)?;
                    let run_ids: Vec<RunId> =
                        serde_json::from_str(&text).map_err(|e| StoreError::corrupt("outbox.run_ids", e))?;
                    let mut log = tx.prepare_cached(UPDATE_LOG).map_err(db)?;
                    for run in run_ids.iter().map(ToString::to_string) {
                        log.execute((&s.rule_id, &run, &outcome)).map_err(db)?;
                    }
                }
                out.push(ClaimOutcome::GaveUp);
            }
        }
    }
    Ok(out)
}
