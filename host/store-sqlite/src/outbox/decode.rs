//! How the outbox's rows are read and written: the columns a listing and
//! the worker's due read take, their decoding, and queueing a delivery.

use sqlx::sqlite::SqliteRow;
use sqlx::{Row, Sqlite, Transaction};

use runhook_core::model::{DeliveryId, RuleId, RunId, Timestamp};
use runhook_core::secrets::Keyring;
use runhook_store::outbox::{endpoint_key, join_secrets, split_secrets};
use runhook_store::sealed::{SealedTarget, Target, open};
use runhook_store::{AttemptRecord, Delivery, DueCursor, OutboxRow, StoreError};

use crate::SqliteStore;
use crate::error::db;
use crate::rows::{parse_id, req_ts, ts};

/// What a listing shows of a delivery: its state, target and runs; not its
/// body or headers, which it never shows.
pub(super) const LISTED_COLUMNS: &str = "s.id, s.rule_id, o.url, o.run_ids, s.created_at, s.attempts, s.status, s.next_attempt_at, \
     s.finished_at, s.last_error";

/// What the worker reads of a due delivery: all it sends, and where it
/// stands in due order. `status = 'pending'` as written selects the partial
/// index `delivery_due`, which is in this order and holds the endpoint.
/// [`DueText::read`] reads the columns by position: keep the two in step.
pub(super) const DUE_QUERY: &str = "SELECT s.id, s.rule_id, o.url, o.run_ids, s.created_at, s.attempts, s.next_attempt_at, \
     o.headers, o.body, o.signing_secret, s.endpoint, o.webhook_id \
     FROM delivery_state s JOIN outbox o ON o.id = s.id \
     WHERE s.status = 'pending' AND s.next_attempt_at <= ?1 AND (s.next_attempt_at, s.id) > (?2, ?3) \
     AND (s.claimed_until IS NULL OR s.claimed_until < ?1) \
     AND s.endpoint NOT IN (SELECT value FROM json_each(?4)) \
     ORDER BY s.next_attempt_at, s.id LIMIT ?5";

/// The two tables a delivery lives in, joined.
pub(super) const DELIVERIES: &str = "delivery_state s JOIN outbox o ON o.id = s.id";

/// Queues one delivery inside a cycle's transaction: its payload in
/// `outbox`, its state (pending, due now) in `delivery_state`.
pub(crate) async fn insert_outbox(
    tx: &mut Transaction<'_, Sqlite>,
    store: &SqliteStore,
    o: &OutboxRow,
) -> Result<(), StoreError> {
    let (id, rule_id, created) = (o.id.to_string(), o.rule_id.to_string(), o.created_at.to_naive_string());
    let target = Target { url: o.url.clone(), headers: o.headers.clone(), secret: join_secrets(&o.signing_secrets) };
    let sealed = store.targets.seal(&store.keys, &target);
    sqlx::query(
        "INSERT INTO outbox (id, rule_id, url, headers, body, run_ids, signing_secret, created_at, webhook_id) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&id)
    .bind(&rule_id)
    .bind(sealed.url)
    .bind(sealed.headers)
    .bind(&o.body)
    .bind(serde_json::to_string(&o.run_ids).unwrap_or_else(|_| "[]".into()))
    .bind(sealed.secret)
    .bind(&created)
    .bind(o.webhook_id.map(|w| w.to_string()))
    .execute(&mut **tx)
    .await
    .map_err(db)?;
    sqlx::query(
        "INSERT INTO delivery_state (id, rule_id, endpoint, status, attempts, next_attempt_at, created_at) \
         VALUES (?, ?, ?, 'pending', 0, ?, ?)",
    )
    .bind(&id)
    .bind(&rule_id)
    .bind(endpoint_key(&o.url))
    .bind(&created)
    .bind(&created)
    .execute(&mut **tx)
    .await
    .map_err(db)?;
    Ok(())
}

/// The columns a due row and a listed delivery share.
struct Common {
    id: DeliveryId,
    rule_id: RuleId,
    run_ids: Vec<RunId>,
    created_at: Timestamp,
    attempts: u32,
}

/// [`Common`] as stored, before parsing.
struct CommonText {
    id: String,
    rule_id: String,
    run_ids: String,
    created_at: Option<String>,
    attempts: i64,
}

impl CommonText {
    fn parse(self) -> Result<Common, StoreError> {
        Ok(Common {
            id: parse_id(&self.id, "delivery_state.id")?,
            rule_id: parse_id(&self.rule_id, "delivery_state.rule_id")?,
            run_ids: serde_json::from_str(&self.run_ids).map_err(|e| StoreError::corrupt("outbox.run_ids", e))?,
            created_at: req_ts(self.created_at, "delivery_state.created_at")?,
            attempts: u32::try_from(self.attempts).unwrap_or(0),
        })
    }
}

fn common_from_row(row: &SqliteRow) -> Result<Common, StoreError> {
    CommonText {
        id: row.try_get("id").map_err(db)?,
        rule_id: row.try_get("rule_id").map_err(db)?,
        run_ids: row.try_get("run_ids").map_err(db)?,
        created_at: row.try_get("created_at").map_err(db)?,
        attempts: row.try_get("attempts").map_err(db)?,
    }
    .parse()
}

/// A due row as [`DUE_QUERY`] reads it.
pub(super) struct DueText {
    common: CommonText,
    next_attempt_at: String,
    sealed: SealedTarget,
    body: String,
    endpoint: String,
    webhook_id: Option<String>,
}

impl DueText {
    /// Reads a row of [`DUE_QUERY`] by position (looking each column up
    /// by name cost a tenth of the read).
    pub(super) fn read(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            common: CommonText {
                id: row.get(0)?,
                rule_id: row.get(1)?,
                run_ids: row.get(3)?,
                created_at: row.get(4)?,
                attempts: row.get(5)?,
            },
            next_attempt_at: row.get(6)?,
            sealed: SealedTarget { url: row.get(2)?, headers: row.get(7)?, secret: row.get(9)? },
            body: row.get(8)?,
            endpoint: row.get(10)?,
            webhook_id: row.get(11)?,
        })
    }

    /// Where this row stands in due order.
    pub(super) fn cursor(&self) -> Result<DueCursor, StoreError> {
        let due = req_ts(Some(self.next_attempt_at.clone()), "delivery_state.next_attempt_at")?;
        Ok(DueCursor { due, id: parse_id(&self.common.id, "delivery_state.id")? })
    }

    /// The row to send, its target opened through the store's memory.
    pub(super) fn open(self, store: &SqliteStore) -> Result<(OutboxRow, String), StoreError> {
        let target = store.targets.open(&store.keys, self.sealed)?;
        let c = self.common.parse()?;
        let webhook_id = self.webhook_id.map(|w| parse_id(&w, "outbox.webhook_id")).transpose()?;
        let row = OutboxRow {
            id: c.id,
            rule_id: c.rule_id,
            webhook_id,
            url: target.url.clone(),
            headers: target.headers.clone(),
            body: self.body,
            run_ids: c.run_ids,
            signing_secrets: split_secrets(target.secret.as_deref()),
            created_at: c.created_at,
            attempts: c.attempts,
        };
        Ok((row, self.endpoint))
    }
}

/// A delivery's state from [`LISTED_COLUMNS`], without its history.
pub(super) fn listed_from_row(keys: &Keyring, row: &SqliteRow) -> Result<Delivery, StoreError> {
    let c = common_from_row(row)?;
    let status: String = row.try_get("status").map_err(db)?;
    let next = ts(row.try_get("next_attempt_at").map_err(db)?, "delivery_state.next_attempt_at")?;
    Ok(Delivery {
        id: c.id,
        rule_id: c.rule_id,
        url: open(keys, "outbox.url", &row.try_get::<String, _>("url").map_err(db)?)?,
        run_ids: c.run_ids,
        created_at: c.created_at,
        attempts: c.attempts,
        next_attempt_at: next.filter(|_| status == "pending"),
        status,
        finished_at: ts(row.try_get("finished_at").map_err(db)?, "delivery_state.finished_at")?,
        last_error: row.try_get("last_error").map_err(db)?,
        history: Vec::new(),
    })
}

pub(crate) fn attempt_from_row(row: &SqliteRow) -> Result<(DeliveryId, AttemptRecord), StoreError> {
    Ok((
        parse_id(&row.try_get::<String, _>("delivery_id").map_err(db)?, "delivery_attempts.delivery_id")?,
        AttemptRecord {
            attempt: u32::try_from(row.try_get::<i64, _>("attempt").map_err(db)?).unwrap_or(0),
            started_at: req_ts(row.try_get("started_at").map_err(db)?, "delivery_attempts.started_at")?,
            duration_ms: u64::try_from(row.try_get::<i64, _>("duration_ms").map_err(db)?).unwrap_or(0),
            class: row.try_get("class").map_err(db)?,
            status_code: row.try_get::<Option<i64>, _>("status_code").map_err(db)?.and_then(|s| u16::try_from(s).ok()),
            error: row.try_get("error").map_err(db)?,
        },
    ))
}
