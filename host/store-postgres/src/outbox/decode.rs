//! How the outbox's rows are read and written: the columns a listing and
//! the worker's due read take, their decoding, and queueing a delivery.

use sqlx::postgres::PgRow;
use sqlx::{Postgres, Transaction};
use uuid::Uuid;

use runhook_core::model::{DeliveryId, RuleId, RunId, WebhookId};
use runhook_core::secrets::Keyring;
use runhook_store::outbox::{endpoint_key, join_secrets, split_secrets};
use runhook_store::sealed::{SealedTarget, Target, open};
use runhook_store::{AttemptRecord, Delivery, DueCursor, OutboxRow, StoreError};

use crate::PgStore;
use crate::error::db;
use crate::rows::{at, get, opt_time, time};

/// What a listing shows of a delivery: its state, target and runs; not its
/// body or headers, which it never shows.
pub(super) const LISTED_COLUMNS: &str = "s.id, s.rule_id, o.url, o.run_ids, s.created_at, s.attempts, s.status, \
     s.next_attempt_at, s.finished_at, s.last_error";

/// The two tables a delivery lives in, joined.
pub(super) const DELIVERIES: &str = "delivery_state s JOIN outbox o ON o.id = s.id";

/// What the worker reads of a due delivery: all it sends, and where it
/// stands in due order (`delivery_due` is in this order). A null `$2` reads
/// from the start.
pub(super) const DUE_QUERY: &str = "SELECT s.id, s.rule_id, o.url, o.run_ids, s.created_at, s.attempts, s.next_attempt_at, \
     o.headers, o.body, o.signing_secret, s.endpoint, o.webhook_id \
     FROM delivery_state s JOIN outbox o ON o.id = s.id \
     WHERE s.status = 'pending' AND s.next_attempt_at <= $1 \
     AND ($2::timestamptz IS NULL OR (s.next_attempt_at, s.id) > ($2, $3)) \
     AND (s.claimed_until IS NULL OR s.claimed_until < $1) \
     AND NOT (s.endpoint = ANY($4)) \
     ORDER BY s.next_attempt_at, s.id LIMIT $5";

/// Queues one delivery inside a cycle's transaction: what it sends in
/// `outbox`, its state (pending, due now) in `delivery_state`.
pub(crate) async fn insert_outbox(
    tx: &mut Transaction<'static, Postgres>,
    store: &PgStore,
    o: &OutboxRow,
) -> Result<(), StoreError> {
    let target = Target { url: o.url.clone(), headers: o.headers.clone(), secret: join_secrets(&o.signing_secrets) };
    let sealed = store.targets.seal(&store.keys, &target);
    sqlx::query(
        "INSERT INTO outbox (id, rule_id, url, headers, body, run_ids, signing_secret, created_at, webhook_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(o.id.0)
    .bind(o.rule_id.0)
    .bind(sealed.url)
    .bind(sealed.headers)
    .bind(&o.body)
    .bind(serde_json::to_string(&o.run_ids).unwrap_or_else(|_| "[]".into()))
    .bind(sealed.secret)
    .bind(at(o.created_at))
    .bind(o.webhook_id.map(|w| w.0))
    .execute(&mut **tx)
    .await
    .map_err(db)?;
    sqlx::query(
        "INSERT INTO delivery_state (id, rule_id, endpoint, status, attempts, next_attempt_at, created_at) \
         VALUES ($1, $2, $3, 'pending', 0, $4, $4)",
    )
    .bind(o.id.0)
    .bind(o.rule_id.0)
    .bind(endpoint_key(&o.url))
    .bind(at(o.created_at))
    .execute(&mut **tx)
    .await
    .map_err(db)?;
    Ok(())
}

fn run_ids(row: &PgRow) -> Result<Vec<RunId>, StoreError> {
    serde_json::from_str(&get::<String>(row, "run_ids")?).map_err(|e| StoreError::corrupt("outbox.run_ids", e))
}

fn attempts(row: &PgRow) -> Result<u32, StoreError> {
    Ok(u32::try_from(get::<i32>(row, "attempts")?).unwrap_or(0))
}

/// A row of [`DUE_QUERY`]: the delivery to send, its endpoint, and where it
/// stands in due order.
pub(super) fn due_from_row(store: &PgStore, row: &PgRow) -> Result<(OutboxRow, String, DueCursor), StoreError> {
    let sealed =
        SealedTarget { url: get(row, "url")?, headers: get(row, "headers")?, secret: get(row, "signing_secret")? };
    let target = store.targets.open(&store.keys, sealed)?;
    let id = DeliveryId(get(row, "id")?);
    let out = OutboxRow {
        id,
        rule_id: RuleId(get(row, "rule_id")?),
        webhook_id: get::<Option<Uuid>>(row, "webhook_id")?.map(WebhookId),
        url: target.url.clone(),
        headers: target.headers.clone(),
        body: get(row, "body")?,
        run_ids: run_ids(row)?,
        signing_secrets: split_secrets(target.secret.as_deref()),
        created_at: time(row, "created_at")?,
        attempts: attempts(row)?,
    };
    Ok((out, get(row, "endpoint")?, DueCursor { due: time(row, "next_attempt_at")?, id }))
}

/// A delivery's state from [`LISTED_COLUMNS`], without its history.
pub(super) fn listed_from_row(keys: &Keyring, row: &PgRow) -> Result<Delivery, StoreError> {
    let status: String = get(row, "status")?;
    Ok(Delivery {
        id: DeliveryId(get(row, "id")?),
        rule_id: RuleId(get(row, "rule_id")?),
        url: open(keys, "outbox.url", &get::<String>(row, "url")?)?,
        run_ids: run_ids(row)?,
        created_at: time(row, "created_at")?,
        attempts: attempts(row)?,
        next_attempt_at: opt_time(row, "next_attempt_at")?.filter(|_| status == "pending"),
        status,
        finished_at: opt_time(row, "finished_at")?,
        last_error: get(row, "last_error")?,
        history: Vec::new(),
    })
}

pub(super) fn attempt_from_row(row: &PgRow) -> Result<(DeliveryId, AttemptRecord), StoreError> {
    Ok((
        DeliveryId(get(row, "delivery_id")?),
        AttemptRecord {
            attempt: u32::try_from(get::<i32>(row, "attempt")?).unwrap_or(0),
            started_at: time(row, "started_at")?,
            duration_ms: u64::try_from(get::<i64>(row, "duration_ms")?).unwrap_or(0),
            class: get(row, "class")?,
            status_code: get::<Option<i32>>(row, "status_code")?.and_then(|s| u16::try_from(s).ok()),
            error: get(row, "error")?,
        },
    ))
}
