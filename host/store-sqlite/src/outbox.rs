//! The SQLite store's outbox: queueing, reading due and recording webhook
//! deliveries, listing them, redelivery, and re-sealing secrets.
//!
//! A delivery lives in two tables (migration 0004): `outbox` holds what it
//! sends, written once; `delivery_state` holds where it stands, updated by
//! each attempt's record, so recording never rewrites a body.
//!
//! URLs, header values and signing secrets are sealed with the store's
//! keyring on the way in and opened on the way out ([`runhook_store::sealed`]);
//! nothing above the store sees a sealed value, nothing in the file holds a
//! plain one.

use std::collections::{BTreeMap, HashMap};

use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Row, Sqlite, Transaction};

use async_trait::async_trait;

use crate::SqliteStore;
use crate::error::db;
use crate::rows::{CHUNK, parse_id, push_in, req_ts, ts};
use runhook_core::model::{DeliveryId, RuleId, RunId, Timestamp};
use runhook_core::secrets::Keyring;
use runhook_store::outbox::{endpoint_key, join_secrets, redelivery_target, split_secrets};
use runhook_store::rules::outcome_json;
use runhook_store::sealed::{SealedTarget, Target, open};
use runhook_store::secrets::open_spec;
use runhook_store::{
    AttemptRecord, Delivery, DeliveryQuery, DeliveryRecord, DeliveryStatus, DueCursor, DuePage, DueQuery, OutboxBell,
    OutboxRow, OutboxStore, Redelivery, StoreError,
};

/// What a listing shows of a delivery: its state, target and runs; not its
/// body or headers, which it never shows.
const LISTED_COLUMNS: &str = "s.id, s.rule_id, o.url, o.run_ids, s.created_at, s.attempts, s.status, s.next_attempt_at, \
     s.finished_at, s.last_error";

/// What the worker reads of a due delivery: all it sends, and where it
/// stands in due order. `status = 'pending'` as written selects the partial
/// index `delivery_due`, which is in this order and holds the endpoint.
/// [`DueText::read`] reads the columns by position: keep the two in step.
const DUE_QUERY: &str = "SELECT s.id, s.rule_id, o.url, o.run_ids, s.created_at, s.attempts, s.next_attempt_at, \
     o.headers, o.body, o.signing_secret, s.endpoint \
     FROM delivery_state s JOIN outbox o ON o.id = s.id \
     WHERE s.status = 'pending' AND s.next_attempt_at <= ?1 AND (s.next_attempt_at, s.id) > (?2, ?3) \
     AND s.endpoint NOT IN (SELECT value FROM json_each(?4)) \
     ORDER BY s.next_attempt_at, s.id LIMIT ?5";

/// The two tables a delivery lives in, joined.
const DELIVERIES: &str = "delivery_state s JOIN outbox o ON o.id = s.id";

fn corrupt(column: &'static str) -> impl Fn(String) -> StoreError {
    move |detail| StoreError::Corrupt { column, detail }
}

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
        "INSERT INTO outbox (id, rule_id, url, headers, body, run_ids, signing_secret, created_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&id)
    .bind(&rule_id)
    .bind(sealed.url)
    .bind(sealed.headers)
    .bind(&o.body)
    .bind(serde_json::to_string(&o.run_ids).unwrap_or_else(|_| "[]".into()))
    .bind(sealed.secret)
    .bind(&created)
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
            run_ids: serde_json::from_str(&self.run_ids).map_err(|e| corrupt("outbox.run_ids")(e.to_string()))?,
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
struct DueText {
    common: CommonText,
    next_attempt_at: String,
    sealed: SealedTarget,
    body: String,
    endpoint: String,
}

impl DueText {
    /// Reads a row of [`DUE_QUERY`] by position (looking each column up
    /// by name cost a tenth of the read).
    fn read(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
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
        })
    }

    /// Where this row stands in due order.
    fn cursor(&self) -> Result<DueCursor, StoreError> {
        let due = req_ts(Some(self.next_attempt_at.clone()), "delivery_state.next_attempt_at")?;
        Ok(DueCursor { due, id: parse_id(&self.common.id, "delivery_state.id")? })
    }

    /// The row to send, its target opened through the store's memory.
    fn open(self, store: &SqliteStore) -> Result<(OutboxRow, String), StoreError> {
        let target = store.targets.open(&store.keys, self.sealed)?;
        let c = self.common.parse()?;
        let row = OutboxRow {
            id: c.id,
            rule_id: c.rule_id,
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
fn listed_from_row(keys: &Keyring, row: &SqliteRow) -> Result<Delivery, StoreError> {
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

fn attempt_from_row(row: &SqliteRow) -> Result<(DeliveryId, AttemptRecord), StoreError> {
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

/// Records one attempt, numbered after its delivery's history (a
/// redelivery starts its attempts at 0 again, its history does not).
const INSERT_ATTEMPT: &str = "INSERT INTO delivery_attempts \
     (delivery_id, attempt, started_at, duration_ms, class, status_code, error) \
     VALUES (?1, COALESCE((SELECT MAX(attempt) FROM delivery_attempts WHERE delivery_id = ?1), 0) + 1, \
     ?2, ?3, ?4, ?5, ?6)";

/// The state an attempt leaves its delivery in.
const UPDATE_STATE: &str = "UPDATE delivery_state \
     SET status = ?2, attempts = ?3, next_attempt_at = ?4, finished_at = ?5, last_error = ?6 WHERE id = ?1";

/// A finished delivery's outcome in the log line of a run it carried.
const UPDATE_LOG: &str = "UPDATE rule_runs SET webhooks = ?3 WHERE rule_id = ?1 AND run_id = ?2";

/// One attempt and the state it leaves its delivery in, as bound values.
struct RecordValues {
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
    fn new(r: &DeliveryRecord, now: &str) -> Self {
        let (status, next, error) = match &r.status {
            DeliveryStatus::Delivered => ("delivered", now.to_string(), None),
            DeliveryStatus::Failed(msg) => ("failed", now.to_string(), Some(msg.clone())),
            DeliveryStatus::Retry { at, error } => ("pending", at.to_naive_string(), Some(error.clone())),
        };
        let a = &r.attempt;
        Self {
            id: r.id.to_string(),
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

#[async_trait]
impl OutboxStore for SqliteStore {
    fn outbox_bell(&self) -> &OutboxBell {
        &self.bell
    }

    async fn due_deliveries(&self, q: &DueQuery) -> Result<DuePage, StoreError> {
        let (due, id) = q.after.map_or((String::new(), String::new()), |c| (c.due.to_naive_string(), c.id.to_string()));
        let busy = serde_json::to_string(&q.busy).unwrap_or_else(|_| "[]".into());
        let (now, limit) = (q.now.to_naive_string(), i64::try_from(q.limit).unwrap_or(i64::MAX));
        let rows = self
            .due_reader
            .run(move |conn| {
                let mut query = conn.prepare_cached(DUE_QUERY).map_err(db)?;
                let rows = query.query_map((now, due, id, busy, limit), DueText::read).map_err(db)?;
                rows.collect::<Result<Vec<_>, _>>().map_err(db)
            })
            .await?;
        let end = rows.last().map(DueText::cursor).transpose()?;
        let rows = rows.into_iter().map(|r| r.open(self)).collect::<Result<_, _>>()?;
        Ok(DuePage { rows, end })
    }

    async fn record_deliveries(&self, batch: &[DeliveryRecord]) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let now = Timestamp::now().to_naive_string();
        let values: Vec<RecordValues> = batch.iter().map(|r| RecordValues::new(r, &now)).collect();
        // Holding the store's one write connection keeps this the only writer.
        let _writer = self.write.acquire().await.map_err(db)?;
        self.recorder
            .run(move |conn| {
                let tx = conn.transaction().map_err(db)?;
                {
                    let mut attempt = tx.prepare_cached(INSERT_ATTEMPT).map_err(db)?;
                    let mut state = tx.prepare_cached(UPDATE_STATE).map_err(db)?;
                    let mut log = tx.prepare_cached(UPDATE_LOG).map_err(db)?;
                    for v in &values {
                        let a = (&v.id, &v.started_at, v.duration_ms, &v.class, v.status_code, &v.attempt_error);
                        attempt.execute(a).map_err(db)?;
                        state.execute((&v.id, v.status, v.attempts, &v.next, &v.finished, &v.error)).map_err(db)?;
                        if let Some(outcome) = &v.outcome {
                            for run in &v.run_ids {
                                log.execute((&v.rule_id, run, outcome)).map_err(db)?;
                            }
                        }
                    }
                }
                tx.commit().map_err(db)?;
                Ok(())
            })
            .await
    }

    async fn list_deliveries(&self, q: &DeliveryQuery) -> Result<Vec<Delivery>, StoreError> {
        let mut b: QueryBuilder<Sqlite> =
            QueryBuilder::new(format!("SELECT {LISTED_COLUMNS} FROM {DELIVERIES} WHERE 1 = 1"));
        if let Some(rule) = q.rule {
            b.push(" AND s.rule_id = ").push_bind(rule.to_string());
        }
        if let Some(status) = &q.status {
            b.push(" AND s.status = ").push_bind(status.clone());
        }
        if let Some(since) = q.since {
            b.push(" AND s.created_at >= ").push_bind(since.to_naive_string());
        }
        if let Some(until) = q.until {
            b.push(" AND s.created_at < ").push_bind(until.to_naive_string());
        }
        b.push(" ORDER BY s.created_at DESC, s.id LIMIT ").push_bind(q.limit as i64);
        b.push(" OFFSET ").push_bind(q.offset as i64);
        let rows = b.build().fetch_all(&self.read).await.map_err(db)?;
        self.deliveries_from_rows(&rows).await
    }

    async fn get_delivery(&self, id: DeliveryId) -> Result<Option<Delivery>, StoreError> {
        let rows = sqlx::query(&format!("SELECT {LISTED_COLUMNS} FROM {DELIVERIES} WHERE s.id = ?"))
            .bind(id.to_string())
            .fetch_all(&self.read)
            .await
            .map_err(db)?;
        Ok(self.deliveries_from_rows(&rows).await?.pop())
    }

    async fn redeliver(&self, id: DeliveryId) -> Result<bool, StoreError> {
        let mut tx = self.write.begin().await.map_err(db)?;
        let found: Option<(String, String, Option<String>)> = sqlx::query_as(
            "SELECT s.status, s.rule_id, r.spec FROM delivery_state s LEFT JOIN rules r ON r.id = s.rule_id \
             WHERE s.id = ?",
        )
        .bind(id.to_string())
        .fetch_optional(&mut *tx)
        .await
        .map_err(db)?;
        let spec = match found {
            None => return Ok(false),
            Some((status, _, _)) if status == "pending" => {
                return Err(StoreError::Conflict(format!("delivery {id} is still pending")));
            }
            Some((_, rule, None)) => {
                return Err(StoreError::Conflict(format!("delivery {id}'s rule {rule} was deleted")));
            }
            Some((_, _, Some(spec))) => spec,
        };
        self.requeue(&mut tx, &spec, &[id.to_string()]).await?;
        tx.commit().await.map_err(db)?;
        self.bell.ring();
        Ok(true)
    }

    async fn redeliver_matching(&self, which: &Redelivery) -> Result<usize, StoreError> {
        let mut tx = self.write.begin().await.map_err(db)?;
        // `delivery_by_rule` or `delivery_by_time` finds them; the join
        // leaves out deleted rules' deliveries.
        let found: Vec<(String, String)> = sqlx::query_as(
            "SELECT s.id, s.rule_id FROM delivery_state s JOIN rules r ON r.id = s.rule_id \
             WHERE s.status = ?1 AND s.created_at >= ?2 AND s.created_at < ?3 AND (?4 IS NULL OR s.rule_id = ?4)",
        )
        .bind(which.status.as_str())
        .bind(which.since.to_naive_string())
        .bind(which.until.to_naive_string())
        .bind(which.rule.map(|r| r.to_string()))
        .fetch_all(&mut *tx)
        .await
        .map_err(db)?;
        let mut by_rule: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (id, rule) in found {
            by_rule.entry(rule).or_default().push(id);
        }
        let mut n = 0;
        for (rule, ids) in &by_rule {
            let spec: String = sqlx::query_scalar("SELECT spec FROM rules WHERE id = ?")
                .bind(rule)
                .fetch_one(&mut *tx)
                .await
                .map_err(db)?;
            self.requeue(&mut tx, &spec, ids).await?;
            n += ids.len();
        }
        tx.commit().await.map_err(db)?;
        if n > 0 {
            self.bell.ring();
        }
        Ok(n)
    }

    async fn prune_deliveries(&self, before: Timestamp, limit: usize) -> Result<usize, StoreError> {
        let before = before.to_naive_string();
        let mut tx = self.write.begin().await.map_err(db)?;
        // `delivery_by_time` finds the old ones; a redelivery finished
        // recently is kept until its own finish is old enough.
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM delivery_state WHERE created_at < ?1 AND status <> 'pending' AND finished_at < ?1 \
             ORDER BY created_at LIMIT ?2",
        )
        .bind(&before)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&mut *tx)
        .await
        .map_err(db)?;
        if ids.is_empty() {
            return Ok(0);
        }
        let ids_json = serde_json::to_string(&ids).unwrap_or_else(|_| "[]".into());
        for (table, column) in [("delivery_attempts", "delivery_id"), ("outbox", "id"), ("delivery_state", "id")] {
            sqlx::query(&format!("DELETE FROM {table} WHERE {column} IN (SELECT value FROM json_each(?))"))
                .bind(&ids_json)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
        }
        tx.commit().await.map_err(db)?;
        Ok(ids.len())
    }
    async fn outbox_stats(&self) -> Result<(i64, Option<Timestamp>), StoreError> {
        let row =
            sqlx::query("SELECT count(*) AS n, min(created_at) AS oldest FROM delivery_state WHERE status = 'pending'")
                .fetch_one(&self.read)
                .await
                .map_err(db)?;
        Ok((row.try_get("n").map_err(db)?, ts(row.try_get("oldest").map_err(db)?, "delivery_state.created_at")?))
    }
}

impl SqliteStore {
    /// Listed rows with their attempts.
    async fn deliveries_from_rows(&self, rows: &[SqliteRow]) -> Result<Vec<Delivery>, StoreError> {
        let mut out = rows.iter().map(|r| listed_from_row(&self.keys, r)).collect::<Result<Vec<_>, _>>()?;
        let ids: Vec<String> = out.iter().map(|d| d.id.to_string()).collect();
        let mut history: HashMap<DeliveryId, Vec<AttemptRecord>> = HashMap::new();
        for chunk in ids.chunks(CHUNK) {
            let mut b: QueryBuilder<Sqlite> = QueryBuilder::new(
                "SELECT delivery_id, attempt, started_at, duration_ms, class, status_code, error FROM delivery_attempts \
                 WHERE 1 = 1",
            );
            push_in(&mut b, "delivery_id", chunk.iter().cloned());
            b.push(" ORDER BY attempt");
            for row in b.build().fetch_all(&self.read).await.map_err(db)? {
                let (id, a) = attempt_from_row(&row)?;
                history.entry(id).or_default().push(a);
            }
        }
        for d in &mut out {
            d.history = history.remove(&d.id).unwrap_or_default();
        }
        Ok(out)
    }

    /// Puts finished deliveries `ids` of one rule (its stored spec is
    /// `spec`) back in the queue, due now, their attempts counted afresh
    /// and their history kept, each to the target `redelivery_target`
    /// chooses; deliveries bound for one target share its sealing.
    async fn requeue(&self, tx: &mut Transaction<'_, Sqlite>, spec: &str, ids: &[String]) -> Result<(), StoreError> {
        let now = Timestamp::now();
        let spec = open_spec(&self.keys, spec)?;
        let rows: Vec<(String, String, String, Option<String>)> = sqlx::query_as(
            "SELECT id, url, headers, signing_secret FROM outbox WHERE id IN (SELECT value FROM json_each(?))",
        )
        .bind(serde_json::to_string(ids).unwrap_or_else(|_| "[]".into()))
        .fetch_all(&mut **tx)
        .await
        .map_err(db)?;
        let mut by_target: HashMap<Target, Vec<String>> = HashMap::new();
        for (id, url, headers, sent_secret) in rows {
            let sent = self.targets.open(&self.keys, SealedTarget { url, headers, secret: sent_secret })?;
            by_target.entry(redelivery_target(&spec, &sent, now)).or_default().push(id);
        }
        for (target, ids) in by_target {
            let sealed = self.targets.seal(&self.keys, &target);
            let ids = serde_json::to_string(&ids).unwrap_or_else(|_| "[]".into());
            sqlx::query(
                "UPDATE outbox SET url = ?, headers = ?, signing_secret = ? WHERE id IN (SELECT value FROM json_each(?))",
            )
            .bind(sealed.url)
            .bind(sealed.headers)
            .bind(sealed.secret)
            .bind(&ids)
            .execute(&mut **tx)
            .await.map_err(db)?;
            sqlx::query(
                "UPDATE delivery_state SET status = 'pending', attempts = 0, next_attempt_at = ?, finished_at = NULL, \
                 endpoint = ? WHERE id IN (SELECT value FROM json_each(?))",
            )
            .bind(now.to_naive_string())
            .bind(endpoint_key(&target.url))
            .bind(&ids)
            .execute(&mut **tx)
            .await
            .map_err(db)?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "outbox_tests.rs"]
mod tests;
