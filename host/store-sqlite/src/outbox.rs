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

use crate::error::db;
use crate::rules::{map_secrets, spec_json, stored_spec};
use crate::{CHUNK, SqliteStore, parse_id, push_in, req_ts, ts};
use runhook_core::model::{DeliveryId, RuleId, RuleSpec, RunId, Timestamp};
use runhook_core::secrets::Keyring;
use runhook_store::outbox::endpoint_key;
use runhook_store::rules::outcome_json;
use runhook_store::sealed::{SealedTarget, Target, open, open_target};
use runhook_store::{
    AttemptRecord, Delivery, DeliveryQuery, DeliveryRecord, DeliveryStatus, DueCursor, DuePage, DueQuery, OutboxRow,
    Redelivery, StoreError,
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

/// A delivery's signing secrets as its one sealed column holds them,
/// separated by spaces (a `whsec_` secret holds none).
fn join_secrets(secrets: &[String]) -> Option<String> {
    (!secrets.is_empty()).then(|| secrets.join(" "))
}

fn split_secrets(joined: Option<&str>) -> Vec<String> {
    joined.map(|s| s.split_whitespace().map(str::to_string).collect()).unwrap_or_default()
}

/// Queues one delivery inside a cycle's transaction: its payload in
/// `outbox`, its state (pending, due now) in `delivery_state`.
pub(super) async fn insert_outbox(
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

impl SqliteStore {
    pub(super) async fn due_deliveries_impl(&self, q: &DueQuery) -> Result<DuePage, StoreError> {
        let (due, id) = q.after.as_ref().map_or((String::new(), String::new()), |c| (c.due.clone(), c.id.clone()));
        let busy = serde_json::to_string(&q.busy).unwrap_or_else(|_| "[]".into());
        let (now, limit) = (q.now.to_naive_string(), i64::try_from(q.limit).unwrap_or(i64::MAX));
        let rows = self
            .due_reader
            .run(move |conn| {
                let mut query = conn.prepare_cached(DUE_QUERY).map_err(db)?;
                let rows = query.query_map((now, due, id, busy, limit), DueText::read).map_err(db)?;
                Ok(rows.collect::<Result<Vec<_>, _>>().map_err(db)?)
            })
            .await?;
        let end = rows.last().map(|last| DueCursor { due: last.next_attempt_at.clone(), id: last.common.id.clone() });
        let rows = rows.into_iter().map(|r| r.open(self)).collect::<Result<_, _>>()?;
        Ok(DuePage { rows, end })
    }

    pub(super) async fn record_deliveries_impl(&self, batch: &[DeliveryRecord]) -> Result<(), StoreError> {
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

    pub(super) async fn list_deliveries_impl(&self, q: &DeliveryQuery) -> Result<Vec<Delivery>, StoreError> {
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

    pub(super) async fn get_delivery_impl(&self, id: DeliveryId) -> Result<Option<Delivery>, StoreError> {
        let rows = sqlx::query(&format!("SELECT {LISTED_COLUMNS} FROM {DELIVERIES} WHERE s.id = ?"))
            .bind(id.to_string())
            .fetch_all(&self.read)
            .await
            .map_err(db)?;
        Ok(self.deliveries_from_rows(&rows).await?.pop())
    }

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

    pub(super) async fn redeliver_impl(&self, id: DeliveryId) -> Result<bool, StoreError> {
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

    pub(super) async fn redeliver_matching_impl(&self, which: &Redelivery) -> Result<usize, StoreError> {
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

    /// Puts finished deliveries `ids` of one rule (its stored spec is
    /// `spec`) back in the queue, due now, their attempts counted afresh
    /// and their history kept. Each goes to its webhook as the rule has it
    /// now, when that webhook is known: the rule's only one, or the one
    /// with the URL it was sent to (so a corrected URL or a rotated header
    /// takes effect); otherwise to the URL and headers it was sent to. All
    /// are signed with the rule's current secrets: a secret replaced since
    /// they were queued would no longer verify.
    async fn requeue(&self, tx: &mut Transaction<'_, Sqlite>, spec: &str, ids: &[String]) -> Result<(), StoreError> {
        let now = Timestamp::now();
        let spec = stored_spec(&self.keys, spec)?;
        let secret = join_secrets(&spec.signing_secrets(now));
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
            let webhook = match spec.webhooks.as_slice() {
                [only] => Some(only),
                all => all.iter().find(|w| w.url == sent.url),
            };
            let (url, headers) = match webhook {
                Some(w) => (w.url.clone(), w.headers.clone().unwrap_or_default()),
                None => (sent.url.clone(), sent.headers.clone()),
            };
            by_target.entry(Target { url, headers, secret: secret.clone() }).or_default().push(id);
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

    pub(super) async fn prune_deliveries_impl(&self, before: Timestamp, limit: usize) -> Result<usize, StoreError> {
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

    pub(super) async fn reseal_secrets_impl(&self) -> Result<usize, StoreError> {
        let keys = &self.keys;
        let mut changed = 0;
        let mut tx = self.write.begin().await.map_err(db)?;
        for row in sqlx::query("SELECT id, spec FROM rules").fetch_all(&mut *tx).await.map_err(db)? {
            let text: String = row.try_get("spec").map_err(db)?;
            let mut spec: RuleSpec = serde_json::from_str(&text).map_err(|e| corrupt("rules.spec")(e.to_string()))?;
            let mut stale = 0;
            map_secrets(&mut spec, |v| {
                stale += usize::from(!keys.is_current(v));
                keys.open(v).map_err(|e| corrupt("rules.spec")(e.to_string()))
            })?;
            if stale > 0 {
                changed += stale;
                sqlx::query("UPDATE rules SET spec = ? WHERE id = ?")
                    .bind(spec_json(keys, &spec)?)
                    .bind(row.try_get::<String, _>("id").map_err(db)?)
                    .execute(&mut *tx)
                    .await
                    .map_err(db)?;
            }
        }
        // Only the sealed columns: every start runs this, and the outbox
        // keeps delivered rows with their bodies.
        let rows =
            sqlx::query("SELECT id, url, headers, signing_secret FROM outbox").fetch_all(&mut *tx).await.map_err(db)?;
        for row in rows {
            let sealed = SealedTarget {
                url: row.try_get("url").map_err(db)?,
                headers: row.try_get("headers").map_err(db)?,
                secret: row.try_get("signing_secret").map_err(db)?,
            };
            let headers: BTreeMap<String, String> =
                serde_json::from_str(&sealed.headers).map_err(|e| corrupt("outbox.headers")(e.to_string()))?;
            let parts = std::iter::once(&sealed.url).chain(&sealed.secret).chain(headers.values());
            let stale = parts.filter(|v| !keys.is_current(v)).count();
            if stale == 0 {
                continue;
            }
            changed += stale;
            let target = open_target(keys, &sealed)?;
            let resealed = self.targets.seal(keys, &target);
            let id: String = row.try_get("id").map_err(db)?;
            sqlx::query("UPDATE outbox SET url = ?, headers = ?, signing_secret = ? WHERE id = ?")
                .bind(resealed.url)
                .bind(resealed.headers)
                .bind(resealed.secret)
                .bind(&id)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            // Rows queued before endpoints were kept have none yet.
            sqlx::query("UPDATE delivery_state SET endpoint = ? WHERE id = ?")
                .bind(endpoint_key(&target.url))
                .bind(&id)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
        }
        tx.commit().await.map_err(db)?;
        Ok(changed)
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::*;
    use runhook_core::model::{RuleId, WebhookTarget};

    /// A database at migration 0003 (state inside `outbox`), as the
    /// previous release left it, with a pending and a delivered delivery.
    async fn release_0003_database(dir: &std::path::Path, keys: &Keyring) -> (DeliveryId, DeliveryId) {
        let all = sqlx::migrate!("./migrations");
        let upto_3 = sqlx::migrate::Migrator {
            migrations: Cow::Owned(all.migrations.iter().filter(|m| m.version <= 3).cloned().collect()),
            ..sqlx::migrate!("./migrations")
        };
        let options =
            sqlx::sqlite::SqliteConnectOptions::new().filename(dir.join("runhook.db")).create_if_missing(true);
        let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
        upto_3.run(&pool).await.unwrap();
        let (pending, delivered, rule) = (DeliveryId::new_v7(), DeliveryId::new_v7(), RuleId::new_v4());
        let url = "http://127.0.0.1:9/hook?token=old";
        for (id, status, attempts) in [(pending, "pending", 1), (delivered, "delivered", 1)] {
            sqlx::query(
                "INSERT INTO outbox (id, rule_id, url, headers, body, run_ids, signing_secret, created_at, status, \
                 attempts, next_attempt_at, last_error, finished_at, endpoint) \
                 VALUES (?, ?, ?, ?, '{}', '[]', NULL, '2026-11-01T00:00:00.000000', ?, ?, '2026-11-01T00:00:01.000000', \
                 'HTTP 500', NULL, ?)",
            )
            .bind(id.to_string())
            .bind(rule.to_string())
            .bind(keys.seal(url))
            .bind(format!(r#"{{"x-team":"{}"}}"#, keys.seal("secret-header")))
            .bind(status)
            .bind(attempts)
            .bind(endpoint_key(url))
            .execute(&pool)
            .await
            .unwrap();
            sqlx::query(
                "INSERT INTO delivery_attempts VALUES (?, 1, '2026-11-01T00:00:00.000000', 3, 'server_error', 500, 'HTTP 500')",
            )
            .bind(id.to_string())
            .execute(&pool)
            .await
            .unwrap();
        }
        pool.close().await;
        (pending, delivered)
    }

    /// A delivery of `rule` as a cycle queues it.
    fn fresh_row(rule: RuleId) -> OutboxRow {
        let target = WebhookTarget { url: "https://hooks.example.com/x".into(), headers: None };
        OutboxRow::queued(rule, &target, "{}".into(), vec![])
    }

    fn delivered_record(id: DeliveryId, attempts: u32) -> DeliveryRecord {
        DeliveryRecord {
            id,
            rule_id: RuleId::new_v4(),
            run_ids: vec![],
            attempts,
            attempt: AttemptRecord {
                attempt: attempts,
                started_at: Timestamp::now(),
                duration_ms: 4,
                class: "success".into(),
                status_code: Some(200),
                error: None,
            },
            status: DeliveryStatus::Delivered,
        }
    }

    /// `id`'s attempt `attempts`, after which the policy gave up.
    fn failed_record(id: DeliveryId, attempts: u32, error: &str) -> DeliveryRecord {
        DeliveryRecord { status: DeliveryStatus::Failed(error.into()), ..delivered_record(id, attempts) }
    }

    /// Queues `rows` in one transaction, as a cycle does.
    async fn queue_rows(store: &SqliteStore, rows: &[OutboxRow]) {
        let mut tx = store.write.begin().await.unwrap();
        for row in rows {
            insert_outbox(&mut tx, store, row).await.unwrap();
        }
        tx.commit().await.unwrap();
    }

    #[tokio::test]
    async fn deliveries_of_the_previous_release_survive_the_move_of_their_state() {
        let dir = tempfile::tempdir().unwrap();
        let keys = Keyring::generate();
        let (pending, delivered) = release_0003_database(dir.path(), &keys).await;
        let store = SqliteStore::open(dir.path(), keys).await.unwrap();

        let listed = store.list_deliveries_impl(&DeliveryQuery { limit: 10, ..Default::default() }).await.unwrap();
        assert_eq!(listed.len(), 2);
        let old = store.get_delivery_impl(delivered).await.unwrap().unwrap();
        assert_eq!((old.status.as_str(), old.attempts, old.history.len()), ("delivered", 1, 1));
        assert_eq!(old.url, "http://127.0.0.1:9/hook?token=old");

        let due = store
            .due_deliveries_impl(&DueQuery { now: Timestamp::now(), limit: 10, busy: vec![], after: None })
            .await
            .unwrap();
        assert_eq!(due.rows.len(), 1);
        let (row, endpoint) = &due.rows[0];
        assert_eq!((row.id, row.attempts), (pending, 1));
        assert_eq!(row.headers.get("x-team").map(String::as_str), Some("secret-header"));
        assert_eq!(*endpoint, endpoint_key(&row.url));

        // The next attempt continues the history; the row leaves the due set.
        store.record_deliveries_impl(&[delivered_record(pending, 2)]).await.unwrap();
        let now = store.get_delivery_impl(pending).await.unwrap().unwrap();
        assert_eq!((now.status.as_str(), now.attempts), ("delivered", 2));
        assert_eq!(now.history.iter().map(|a| a.attempt).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(now.history[1].class, "success");
        let due = store
            .due_deliveries_impl(&DueQuery { now: Timestamp::now(), limit: 10, busy: vec![], after: None })
            .await
            .unwrap();
        assert!(due.rows.is_empty());
        assert_eq!(runhook_store::Store::outbox_stats(&store).await.unwrap().0, 0);
    }

    #[tokio::test]
    async fn a_mixed_group_is_recorded_whole() {
        let dir = tempfile::tempdir().unwrap();
        let keys = Keyring::generate();
        let store = SqliteStore::open(dir.path(), keys).await.unwrap();
        let rule = RuleId::new_v4();
        let n = 131;
        let rows: Vec<OutboxRow> = (0..n).map(|_| fresh_row(rule)).collect();
        queue_rows(&store, &rows).await;
        let ids: Vec<DeliveryId> = rows.iter().map(|r| r.id).collect();
        // Half delivered, half to be retried.
        let records: Vec<DeliveryRecord> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| {
                let mut r = delivered_record(*id, 1);
                if i % 2 == 1 {
                    r.status = DeliveryStatus::Retry { at: Timestamp::now(), error: "HTTP 503".into() };
                }
                r
            })
            .collect();
        store.record_deliveries_impl(&records).await.unwrap();
        let all = store.list_deliveries_impl(&DeliveryQuery { limit: 1000, ..Default::default() }).await.unwrap();
        assert_eq!(all.len(), n);
        for d in &all {
            let i = ids.iter().position(|id| *id == d.id).unwrap();
            let expected = if i % 2 == 1 { "pending" } else { "delivered" };
            assert_eq!((d.status.as_str(), d.attempts, d.history.len()), (expected, 1, 1), "delivery {i}");
            assert_eq!(d.last_error.is_some(), i % 2 == 1);
        }
        assert_eq!(runhook_store::Store::outbox_stats(&store).await.unwrap().0, i64::try_from(n / 2).unwrap());
    }

    #[tokio::test]
    async fn pruning_removes_only_deliveries_finished_before_the_cutoff() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path(), Keyring::generate()).await.unwrap();
        let days_ago = |d: i64| Timestamp::from_datetime(chrono::Utc::now() - chrono::Duration::days(d));
        let rule = RuleId::new_v4();
        // Queued 40 days ago: delivered, failed, pending, redelivered lately;
        // and one queued today, delivered.
        let rows: Vec<OutboxRow> =
            [40, 40, 40, 40, 0].into_iter().map(|d| OutboxRow { created_at: days_ago(d), ..fresh_row(rule) }).collect();
        queue_rows(&store, &rows).await;
        let [delivered, failed, pending, redelivered, recent] = [0, 1, 2, 3, 4].map(|i| rows[i].id);
        let records =
            [delivered_record(delivered, 1), failed_record(failed, 3, "HTTP 404"), delivered_record(redelivered, 1)];
        store.record_deliveries_impl(&records).await.unwrap();
        store.record_deliveries_impl(&[delivered_record(recent, 1)]).await.unwrap();
        for id in [delivered, failed] {
            sqlx::query("UPDATE delivery_state SET finished_at = ? WHERE id = ?")
                .bind(days_ago(39).to_naive_string())
                .bind(id.to_string())
                .execute(&store.write)
                .await
                .unwrap();
        }

        let cutoff = days_ago(30);
        assert_eq!(store.prune_deliveries_impl(cutoff, 1).await.unwrap(), 1);
        assert_eq!(store.prune_deliveries_impl(cutoff, 10).await.unwrap(), 1);
        assert_eq!(store.prune_deliveries_impl(cutoff, 10).await.unwrap(), 0);
        for id in [delivered, failed] {
            assert!(store.get_delivery_impl(id).await.unwrap().is_none());
        }
        for id in [pending, redelivered, recent] {
            assert!(store.get_delivery_impl(id).await.unwrap().is_some());
        }
        // Payloads and attempts went with them.
        let count = |sql: &'static str| sqlx::query_scalar::<_, i64>(sql).fetch_one(&store.read);
        assert_eq!(count("SELECT COUNT(*) FROM outbox").await.unwrap(), 3);
        assert_eq!(count("SELECT COUNT(*) FROM delivery_attempts").await.unwrap(), 2);
    }

    #[tokio::test]
    async fn a_bulk_redelivery_queues_the_finished_deliveries_it_selects() {
        use futures_util::FutureExt;

        use runhook_core::model::{RuleSpec, SessionId};
        use runhook_store::{Finished, Redelivery, Store};
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path(), Keyring::generate()).await.unwrap();
        let mut rules = Vec::new();
        for name in ["a", "b", "deleted"] {
            let rule = store.create_rule(RuleId::new_v4(), &RuleSpec::new(name, SessionId::new_v4(), vec![])).await;
            rules.push(rule.unwrap().id);
        }
        let [a, b, deleted] = [rules[0], rules[1], rules[2]];
        let ago = |mins: i64| Timestamp::from_datetime(chrono::Utc::now() - chrono::Duration::minutes(mins));
        // Rule a: failed 3 h ago, failed, delivered, pending; rule b: failed;
        // the deleted rule: failed. All but the first queued 30 min ago.
        let rows: Vec<OutboxRow> = [(a, 180), (a, 30), (a, 30), (a, 30), (b, 30), (deleted, 30)]
            .into_iter()
            .map(|(rule, mins)| OutboxRow { created_at: ago(mins), ..fresh_row(rule) })
            .collect();
        queue_rows(&store, &rows).await;
        let ids: Vec<DeliveryId> = rows.iter().map(|r| r.id).collect();
        let failed = |id| failed_record(id, 3, "HTTP 500");
        let records = [failed(ids[0]), failed(ids[1]), delivered_record(ids[2], 1), failed(ids[4]), failed(ids[5])];
        store.record_deliveries_impl(&records).await.unwrap();
        assert!(store.delete_rule(deleted).await.unwrap());
        while store.bell.rung().now_or_never().is_some() {}

        let hour = Redelivery { rule: None, status: Finished::Failed, since: ago(60), until: Timestamp::now() };
        assert_eq!(store.redeliver_matching_impl(&hour).await.unwrap(), 2);
        assert!(store.bell.rung().now_or_never().is_some(), "the worker was not told");
        let status = |id| {
            let store = store.clone();
            async move { store.get_delivery_impl(id).await.unwrap().unwrap() }
        };
        for (i, expected) in ["failed", "pending", "delivered", "pending", "pending", "failed"].into_iter().enumerate()
        {
            let d = status(ids[i]).await;
            assert_eq!(d.status, expected, "delivery {i}");
            if i == 1 {
                // Queued again from the start, its history kept.
                assert_eq!((d.attempts, d.history.len(), d.finished_at), (0, 1, None));
            }
        }
        // One rule's delivered ones; nothing left of a window already redelivered.
        let delivered = Redelivery { rule: Some(a), status: Finished::Delivered, ..hour.clone() };
        assert_eq!(store.redeliver_matching_impl(&delivered).await.unwrap(), 1);
        assert_eq!(store.redeliver_matching_impl(&hour).await.unwrap(), 0);
        // A deleted rule's delivery is not sent again, one by one either.
        let refused = store.redeliver_impl(ids[5]).await.unwrap_err().to_string();
        assert!(refused.contains("was deleted"), "{refused}");
        assert_eq!(status(ids[5]).await.status, "failed");
    }

    #[tokio::test]
    async fn a_redelivery_is_signed_with_the_rules_current_secrets() {
        use runhook_core::model::{RuleSpec, SessionId};
        use runhook_store::{Finished, Redelivery, Store};
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path(), Keyring::generate()).await.unwrap();
        let (a, b, c) =
            ("whsec_aaaaaaaaaaaaaaaaaaaaaaaa", "whsec_bbbbbbbbbbbbbbbbbbbbbbbb", "whsec_cccccccccccccccccccccccc");
        let spec = |secret: &str| RuleSpec {
            signing_secret: Some(secret.into()),
            ..RuleSpec::new("signed", SessionId::new_v4(), vec![])
        };
        let rule = store.create_rule(RuleId::new_v4(), &spec(a)).await.unwrap();
        let rows: Vec<OutboxRow> =
            (0..2).map(|_| OutboxRow { signing_secrets: vec![a.into()], ..fresh_row(rule.id) }).collect();
        queue_rows(&store, &rows).await;
        let failed = |id| failed_record(id, 3, "HTTP 500");
        store.record_deliveries_impl(&[failed(rows[0].id), failed(rows[1].id)]).await.unwrap();
        let due_secrets = || async {
            let q = DueQuery { now: Timestamp::now(), limit: 10, busy: vec![], after: None };
            let due = store.due_deliveries_impl(&q).await.unwrap();
            due.rows.into_iter().map(|(r, _)| (r.id, r.signing_secrets)).collect::<Vec<_>>()
        };

        // Rotated to b, a's overlap over: the redelivery carries b alone.
        store.update_rule(rule.id, &spec(b)).await.unwrap();
        assert!(store.redeliver_impl(rows[0].id).await.unwrap());
        assert_eq!(due_secrets().await, [(rows[0].id, vec![b.to_string()])]);

        // Rotated to c with b still in its overlap: both sign.
        let mut rotated = spec(c);
        rotated.rotate_from(&spec(b), Timestamp::now(), chrono::Duration::hours(1));
        store.update_rule(rule.id, &rotated).await.unwrap();
        let which = Redelivery {
            rule: Some(rule.id),
            status: Finished::Failed,
            since: rows[0].created_at,
            until: Timestamp::now(),
        };
        assert_eq!(store.redeliver_matching_impl(&which).await.unwrap(), 1);
        let due = due_secrets().await;
        assert!(due.contains(&(rows[1].id, vec![c.to_string(), b.to_string()])), "{due:?}");
        // Nothing of it is stored in clear.
        let stored: Vec<String> =
            sqlx::query_scalar("SELECT signing_secret FROM outbox").fetch_all(&store.read).await.unwrap();
        assert!(stored.iter().all(|s| s.starts_with("enc:") && !s.contains("whsec_")), "{stored:?}");
    }

    #[tokio::test]
    async fn a_redelivery_goes_to_its_webhook_as_the_rule_has_it_now() {
        use runhook_core::model::{RuleSpec, SessionId};
        use runhook_store::{Finished, Redelivery, Store};
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path(), Keyring::generate()).await.unwrap();
        let hook = |url: &str, team: &str| WebhookTarget {
            url: url.into(),
            headers: Some([("x-team".to_string(), team.to_string())].into_iter().collect()),
        };
        let (old, fixed, x, y, gone) = (
            hook("https://old.example/hook?t=1", "a"),
            hook("https://fixed.example/hook?t=2", "b"),
            hook("https://x.example/hook", "1"),
            hook("https://y.example/hook", "1"),
            hook("https://gone.example/hook", "1"),
        );
        let spec = |webhooks: Vec<WebhookTarget>| RuleSpec::new("r", SessionId::new_v4(), webhooks);
        let single = store.create_rule(RuleId::new_v4(), &spec(vec![old.clone()])).await.unwrap().id;
        let double = store.create_rule(RuleId::new_v4(), &spec(vec![x.clone(), y.clone()])).await.unwrap().id;
        let rows = [(single, &old), (double, &x), (double, &gone)]
            .map(|(rule, target)| OutboxRow::queued(rule, target, "{}".into(), vec![]));
        queue_rows(&store, &rows).await;
        let failed = |id| failed_record(id, 1, "HTTP 404");
        store.record_deliveries_impl(&rows.each_ref().map(|r| failed(r.id))).await.unwrap();

        // The single webhook's URL is corrected; x's header changes.
        store.update_rule(single, &spec(vec![fixed.clone()])).await.unwrap();
        store.update_rule(double, &spec(vec![hook(&x.url, "2"), y])).await.unwrap();
        let all =
            Redelivery { rule: None, status: Finished::Failed, since: rows[0].created_at, until: Timestamp::now() };
        assert_eq!(store.redeliver_matching_impl(&all).await.unwrap(), 3);
        let q = DueQuery { now: Timestamp::now(), limit: 10, busy: vec![], after: None };
        let due = store.due_deliveries_impl(&q).await.unwrap().rows;
        let sent = |id| {
            due.iter().find(|(r, _)| r.id == id).map(|(r, e)| (r.url.clone(), r.headers["x-team"].clone(), e.clone()))
        };
        assert_eq!(sent(rows[0].id), Some((fixed.url.clone(), "b".into(), endpoint_key(&fixed.url))));
        assert_eq!(sent(rows[1].id), Some((x.url.clone(), "2".into(), endpoint_key(&x.url))));
        // A webhook the rule no longer has: where it was sent.
        assert_eq!(sent(rows[2].id), Some((gone.url.clone(), "1".into(), endpoint_key(&gone.url))));
        assert_eq!(store.get_delivery_impl(rows[0].id).await.unwrap().unwrap().url, fixed.url);
    }

    /// The recorder writes on a connection of its own; it must wait for a
    /// sqlx write transaction in progress, or that transaction, having read
    /// before the record committed, could no longer write (SQLITE_BUSY).
    #[tokio::test]
    async fn recording_waits_for_a_write_transaction_in_progress() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path(), Keyring::generate()).await.unwrap();
        let row = fresh_row(RuleId::new_v4());
        queue_rows(&store, std::slice::from_ref(&row)).await;

        // A write transaction that reads first, as a rule cycle does.
        let mut tx = store.write.begin().await.unwrap();
        let pending: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM delivery_state WHERE status = 'pending'")
            .fetch_one(&mut *tx)
            .await
            .unwrap();
        let recording = tokio::spawn({
            let store = store.clone();
            async move { store.record_deliveries_impl(&[delivered_record(row.id, 1)]).await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        assert!(!recording.is_finished(), "the record did not wait for the transaction");
        sqlx::query("UPDATE meta SET value = ? WHERE key = 'tenant_id'")
            .bind(runhook_store::Store::tenant_id(&store).to_string())
            .execute(&mut *tx)
            .await
            .expect("the transaction can still write");
        tx.commit().await.unwrap();
        recording.await.unwrap().unwrap();
        let d = store.get_delivery_impl(row.id).await.unwrap().unwrap();
        assert_eq!((pending, d.status.as_str()), (1, "delivered"));
    }
}
