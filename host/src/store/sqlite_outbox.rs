//! The SQLite store's outbox: queueing, claiming and recording webhook
//! deliveries, listing them, redelivery, and re-sealing secrets.
//!
//! URLs, header values and signing secrets are sealed with the store's
//! keyring on the way in and opened on the way out; nothing above the
//! store sees a sealed value, nothing in the file holds a plain one.

use std::collections::{BTreeMap, HashMap};

use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Row, Sqlite, Transaction};

use super::outbox::endpoint_key;
use super::rules::outcome_json;
use super::sqlite::{CHUNK, SqliteStore, parse_id, push_in, ts};
use super::sqlite_rules::{map_secrets, spec_json};
use super::{
    AttemptRecord, Delivery, DeliveryQuery, DeliveryRecord, DeliveryStatus, DueCursor, DuePage, DueQuery, OutboxRow,
    StoreError,
};
use crate::model::{DeliveryId, RuleSpec, Timestamp};
use crate::secrets::Keyring;

/// Deliveries recorded per statement: 8 bound values each, far below
/// SQLite's limit of 32766.
const GROUP_CHUNK: usize = 512;

const OUTBOX_COLUMNS: &str = "id, rule_id, url, headers, body, run_ids, signing_secret, created_at, attempts, status, \
     next_attempt_at, finished_at, last_error";

fn corrupt(column: &'static str) -> impl Fn(String) -> StoreError {
    move |detail| StoreError::Corrupt { column, detail }
}

fn seal_headers(keys: &Keyring, headers: &BTreeMap<String, String>) -> String {
    let sealed: BTreeMap<&String, String> = headers.iter().map(|(k, v)| (k, keys.seal(v))).collect();
    serde_json::to_string(&sealed).unwrap_or_else(|_| "{}".into())
}

/// Queues one delivery inside a cycle's transaction.
pub(super) async fn insert_outbox(
    tx: &mut Transaction<'_, Sqlite>,
    keys: &Keyring,
    o: &OutboxRow,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO outbox (id, rule_id, url, headers, body, run_ids, signing_secret, created_at, status, attempts, \
         next_attempt_at, endpoint) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'pending', 0, ?, ?)",
    )
    .bind(o.id.to_string())
    .bind(o.rule_id.to_string())
    .bind(keys.seal(&o.url))
    .bind(seal_headers(keys, &o.headers))
    .bind(&o.body)
    .bind(serde_json::to_string(&o.run_ids).unwrap_or_else(|_| "[]".into()))
    .bind(o.signing_secret.as_deref().map(|s| keys.seal(s)))
    .bind(o.created_at.to_naive_string())
    .bind(o.created_at.to_naive_string())
    .bind(endpoint_key(&o.url))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

fn outbox_from_row(keys: &Keyring, row: &SqliteRow) -> Result<OutboxRow, StoreError> {
    let open = |column: &'static str, v: &str| keys.open(v).map_err(|e| corrupt(column)(e.to_string()));
    let headers: String = row.try_get("headers")?;
    let headers = serde_json::from_str::<BTreeMap<String, String>>(&headers)
        .map_err(|e| corrupt("outbox.headers")(e.to_string()))?
        .into_iter()
        .map(|(k, v)| Ok((k, open("outbox.headers", &v)?)))
        .collect::<Result<_, StoreError>>()?;
    let run_ids: String = row.try_get("run_ids")?;
    let secret: Option<String> = row.try_get("signing_secret")?;
    Ok(OutboxRow {
        id: parse_id(&row.try_get::<String, _>("id")?, "outbox.id")?,
        rule_id: parse_id(&row.try_get::<String, _>("rule_id")?, "outbox.rule_id")?,
        url: open("outbox.url", &row.try_get::<String, _>("url")?)?,
        headers,
        body: row.try_get("body")?,
        run_ids: serde_json::from_str(&run_ids).map_err(|e| corrupt("outbox.run_ids")(e.to_string()))?,
        signing_secret: secret.map(|s| open("outbox.signing_secret", &s)).transpose()?,
        created_at: ts(row.try_get("created_at")?, "outbox.created_at")?
            .ok_or_else(|| corrupt("outbox.created_at")("missing".into()))?,
        attempts: u32::try_from(row.try_get::<i64, _>("attempts")?).unwrap_or(0),
    })
}

fn attempt_from_row(row: &SqliteRow) -> Result<(DeliveryId, AttemptRecord), StoreError> {
    Ok((
        parse_id(&row.try_get::<String, _>("delivery_id")?, "delivery_attempts.delivery_id")?,
        AttemptRecord {
            attempt: u32::try_from(row.try_get::<i64, _>("attempt")?).unwrap_or(0),
            started_at: ts(row.try_get("started_at")?, "delivery_attempts.started_at")?
                .ok_or_else(|| corrupt("delivery_attempts.started_at")("missing".into()))?,
            duration_ms: u64::try_from(row.try_get::<i64, _>("duration_ms")?).unwrap_or(0),
            class: row.try_get("class")?,
            status_code: row.try_get::<Option<i64>, _>("status_code")?.and_then(|s| u16::try_from(s).ok()),
            error: row.try_get("error")?,
        },
    ))
}

impl SqliteStore {
    pub(super) async fn due_deliveries_impl(&self, q: &DueQuery) -> Result<DuePage, StoreError> {
        let mut b: QueryBuilder<Sqlite> = QueryBuilder::new(format!(
            "SELECT {OUTBOX_COLUMNS} FROM outbox WHERE status = 'pending' AND next_attempt_at <= "
        ));
        b.push_bind(q.now.to_naive_string());
        if let Some(after) = &q.after {
            b.push(" AND (next_attempt_at, id) > (").push_bind(after.due.clone());
            b.push(", ").push_bind(after.id.clone()).push(")");
        }
        if !q.busy.is_empty() {
            b.push(" AND endpoint NOT IN (");
            let mut list = b.separated(", ");
            for e in q.busy.iter().take(CHUNK) {
                list.push_bind(e.clone());
            }
            b.push(")");
        }
        b.push(" ORDER BY next_attempt_at, id LIMIT ").push_bind(q.limit as i64);
        let rows = b.build().fetch_all(&self.read).await?;
        let end = match rows.last() {
            Some(last) => Some(DueCursor { due: last.try_get("next_attempt_at")?, id: last.try_get("id")? }),
            None => None,
        };
        let rows = rows.iter().map(|r| outbox_from_row(&self.keys, r)).collect::<Result<_, _>>()?;
        Ok(DuePage { rows, end })
    }

    pub(super) async fn record_deliveries_impl(&self, batch: &[DeliveryRecord]) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let now = Timestamp::now();
        let mut tx = self.write.begin().await?;
        // Three statements per group, whatever its size: the attempts, the
        // deliveries' states, and the rule log of the finished ones.
        for chunk in batch.chunks(GROUP_CHUNK) {
            let mut b: QueryBuilder<Sqlite> = QueryBuilder::new(
                "INSERT INTO delivery_attempts (delivery_id, attempt, started_at, duration_ms, class, status_code, error) ",
            );
            b.push_values(chunk, |mut row, r| {
                let a = &r.attempt;
                // The attempt's number continues the delivery's history.
                row.push_bind(r.id.to_string())
                    .push("COALESCE((SELECT MAX(attempt) FROM delivery_attempts WHERE delivery_id = ")
                    .push_bind_unseparated(r.id.to_string())
                    .push_unseparated("), 0) + 1")
                    .push_bind(a.started_at.to_naive_string())
                    .push_bind(i64::try_from(a.duration_ms).unwrap_or(i64::MAX))
                    .push_bind(a.class.clone())
                    .push_bind(a.status_code.map(i64::from))
                    .push_bind(a.error.clone());
            });
            b.build().execute(&mut *tx).await?;

            let mut b: QueryBuilder<Sqlite> = QueryBuilder::new(
                "UPDATE outbox SET status = v.column2, attempts = v.column3, next_attempt_at = v.column4, \
                 last_error = v.column5, finished_at = v.column6 FROM (",
            );
            b.push_values(chunk, |mut row, r| {
                let (state, next, error) = match &r.status {
                    DeliveryStatus::Delivered => ("delivered", now, None),
                    DeliveryStatus::Failed(msg) => ("failed", now, Some(msg.clone())),
                    DeliveryStatus::Retry { at, error } => ("pending", *at, Some(error.clone())),
                };
                let finished = (state != "pending").then(|| now.to_naive_string());
                row.push_bind(r.id.to_string())
                    .push_bind(state)
                    .push_bind(i64::from(r.attempts))
                    .push_bind(next.to_naive_string())
                    .push_bind(error)
                    .push_bind(finished);
            });
            // Planned as a lookup by primary key per value row.
            b.push(") AS v WHERE outbox.id = v.column1");
            b.build().execute(&mut *tx).await?;

            let finished: Vec<(String, String)> =
                chunk.iter().filter_map(|r| Some((r.id.to_string(), outcome_json(&Some(r.log_outcome()?))?))).collect();
            if !finished.is_empty() {
                // The outcome lands on the log line of every run the delivery carried.
                let mut b: QueryBuilder<Sqlite> = QueryBuilder::new("UPDATE rule_runs SET webhooks = v.column2 FROM (");
                b.push_values(&finished, |mut row, (id, outcome)| {
                    row.push_bind(id.clone()).push_bind(outcome.clone());
                });
                b.push(
                    ") AS v, outbox o, json_each(o.run_ids) j WHERE o.id = v.column1 \
                     AND rule_runs.rule_id = o.rule_id AND rule_runs.run_id = j.value",
                );
                b.build().execute(&mut *tx).await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    pub(super) async fn list_deliveries_impl(&self, q: &DeliveryQuery) -> Result<Vec<Delivery>, StoreError> {
        let mut b: QueryBuilder<Sqlite> = QueryBuilder::new(format!("SELECT {OUTBOX_COLUMNS} FROM outbox WHERE 1 = 1"));
        if let Some(rule) = q.rule {
            b.push(" AND rule_id = ").push_bind(rule.to_string());
        }
        if let Some(status) = &q.status {
            b.push(" AND status = ").push_bind(status.clone());
        }
        b.push(" ORDER BY created_at DESC, id LIMIT ").push_bind(q.limit as i64);
        b.push(" OFFSET ").push_bind(q.offset as i64);
        let rows = b.build().fetch_all(&self.read).await?;
        self.deliveries_from_rows(&rows).await
    }

    pub(super) async fn get_delivery_impl(&self, id: DeliveryId) -> Result<Option<Delivery>, StoreError> {
        let rows = sqlx::query(&format!("SELECT {OUTBOX_COLUMNS} FROM outbox WHERE id = ?"))
            .bind(id.to_string())
            .fetch_all(&self.read)
            .await?;
        Ok(self.deliveries_from_rows(&rows).await?.pop())
    }

    async fn deliveries_from_rows(&self, rows: &[SqliteRow]) -> Result<Vec<Delivery>, StoreError> {
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let o = outbox_from_row(&self.keys, row)?;
            let status: String = row.try_get("status")?;
            let next = ts(row.try_get("next_attempt_at")?, "outbox.next_attempt_at")?;
            out.push(Delivery {
                id: o.id,
                rule_id: o.rule_id,
                url: o.url,
                next_attempt_at: next.filter(|_| status == "pending"),
                status,
                attempts: o.attempts,
                run_ids: o.run_ids,
                created_at: o.created_at,
                finished_at: ts(row.try_get("finished_at")?, "outbox.finished_at")?,
                last_error: row.try_get("last_error")?,
                history: Vec::new(),
            });
        }
        let ids: Vec<String> = out.iter().map(|d| d.id.to_string()).collect();
        let mut history: HashMap<DeliveryId, Vec<AttemptRecord>> = HashMap::new();
        for chunk in ids.chunks(CHUNK) {
            let mut b: QueryBuilder<Sqlite> = QueryBuilder::new(
                "SELECT delivery_id, attempt, started_at, duration_ms, class, status_code, error FROM delivery_attempts \
                 WHERE 1 = 1",
            );
            push_in(&mut b, "delivery_id", chunk.iter().cloned());
            b.push(" ORDER BY attempt");
            for row in b.build().fetch_all(&self.read).await? {
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
        let now = Timestamp::now().to_naive_string();
        let mut tx = self.write.begin().await?;
        let status: Option<String> = sqlx::query_scalar("SELECT status FROM outbox WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&mut *tx)
            .await?;
        match status.as_deref() {
            None => return Ok(false),
            Some("pending") => return Err(StoreError::Conflict(format!("delivery {id} is still pending"))),
            Some(_) => {}
        }
        sqlx::query(
            "UPDATE outbox SET status = 'pending', attempts = 0, next_attempt_at = ?, finished_at = NULL WHERE id = ?",
        )
        .bind(now)
        .bind(id.to_string())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    pub(super) async fn reseal_secrets_impl(&self) -> Result<usize, StoreError> {
        let keys = &self.keys;
        let mut changed = 0;
        let mut tx = self.write.begin().await?;
        for row in sqlx::query("SELECT id, spec FROM rules").fetch_all(&mut *tx).await? {
            let text: String = row.try_get("spec")?;
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
                    .bind(row.try_get::<String, _>("id")?)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        // Only the sealed columns: every start runs this, and the outbox
        // keeps delivered rows with their bodies.
        let rows = sqlx::query("SELECT id, url, headers, signing_secret FROM outbox").fetch_all(&mut *tx).await?;
        for row in rows {
            let url: String = row.try_get("url")?;
            let secret: Option<String> = row.try_get("signing_secret")?;
            let headers: BTreeMap<String, String> = serde_json::from_str(&row.try_get::<String, _>("headers")?)
                .map_err(|e| corrupt("outbox.headers")(e.to_string()))?;
            let stale = std::iter::once(&url).chain(&secret).chain(headers.values()).filter(|v| !keys.is_current(v));
            let stale = stale.count();
            if stale == 0 {
                continue;
            }
            changed += stale;
            let open = |column: &'static str, v: &str| keys.open(v).map_err(|e| corrupt(column)(e.to_string()));
            let url = open("outbox.url", &url)?;
            let headers: BTreeMap<String, String> = headers
                .into_iter()
                .map(|(k, v)| Ok((k, open("outbox.headers", &v)?)))
                .collect::<Result<_, StoreError>>()?;
            let secret = secret.map(|s| open("outbox.signing_secret", &s)).transpose()?;
            sqlx::query("UPDATE outbox SET url = ?, headers = ?, signing_secret = ?, endpoint = ? WHERE id = ?")
                .bind(keys.seal(&url))
                .bind(seal_headers(keys, &headers))
                .bind(secret.as_deref().map(|s| keys.seal(s)))
                .bind(endpoint_key(&url))
                .bind(row.try_get::<String, _>("id")?)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(changed)
    }
}
