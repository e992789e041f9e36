//! [`OutboxStore`] on SQLite: the worker's due reads, claims and records,
//! listing deliveries, redelivery and pruning. Row shapes are in
//! `decode`, the worker's writes in `journal`.
//!
//! A delivery lives in two tables (migration 0004): `outbox` holds what it
//! sends, written once; `delivery_state` holds where it stands, updated by
//! each attempt's record, so recording never rewrites a body.
//!
//! Claims never answer `Busy`: the embedded store has one delivery worker
//! (the data directory is locked), whose own slots bound each endpoint.
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
use crate::rows::{CHUNK, parse_id, push_in, ts};
use runhook_core::model::{DeliveryId, Timestamp};
use runhook_store::outbox::{MAX_ATTEMPTS_PER_DELIVERY, endpoint_key, redelivery_target};
use runhook_store::sealed::{SealedTarget, Target};
use runhook_store::secrets::open_spec;
use runhook_store::{
    AttemptRecord, ClaimOutcome, ClaimTerms, Delivery, DeliveryQuery, DeliveryRecord, DuePage, DueQuery, OutboxBell,
    OutboxStore, Redelivery, StoreError,
};

mod decode;
mod journal;

use decode::{DELIVERIES, DUE_QUERY, DueText, LISTED_COLUMNS, listed_from_row};
pub(crate) use decode::{attempt_from_row, insert_outbox};

/// Deletes the deliveries of rule (or alert) `source` still pending, inside
/// `tx`: they go with it; finished ones stay listed.
pub(crate) async fn drop_pending(tx: &mut sqlx::Transaction<'static, Sqlite>, source: &str) -> Result<(), StoreError> {
    for sql in [
        "DELETE FROM outbox WHERE id IN (SELECT id FROM delivery_state WHERE rule_id = ?1 AND status = 'pending')",
        "DELETE FROM delivery_state WHERE rule_id = ?1 AND status = 'pending'",
    ] {
        sqlx::query(sql).bind(source).execute(&mut **tx).await.map_err(db)?;
    }
    Ok(())
}
use journal::RecordValues;

/// Where a delivery was sent, as stored: id, sealed URL, sealed headers,
/// sealed secrets, webhook id.
type SentTo = (String, String, String, Option<String>, Option<String>);

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

    async fn record_and_claim(
        &self,
        records: &[DeliveryRecord],
        claims: &[DeliveryId],
        terms: &ClaimTerms,
    ) -> Result<(Vec<DeliveryId>, Vec<ClaimOutcome>), StoreError> {
        if records.is_empty() && claims.is_empty() {
            return Ok((Vec::new(), Vec::new()));
        }
        let now = Timestamp::now().to_naive_string();
        let values: Vec<RecordValues> = records.iter().map(|r| RecordValues::new(r, &now)).collect();
        let (ids, terms) = (claims.to_vec(), *terms);
        // Holding the store's one write connection keeps this the only writer.
        let _writer = self.write.acquire().await.map_err(db)?;
        let (refused, claimed) =
            self.recorder.run(move |conn| journal::record_and_claim(conn, &values, &ids, &terms)).await?;
        let refused = refused.iter().map(|id| parse_id(id, "delivery_state.id")).collect::<Result<_, _>>()?;
        Ok((refused, claimed))
    }

    async fn list_deliveries(&self, q: &DeliveryQuery) -> Result<Vec<Delivery>, StoreError> {
        let mut b: QueryBuilder<Sqlite> =
            QueryBuilder::new(format!("SELECT {LISTED_COLUMNS} FROM {DELIVERIES} WHERE 1 = 1"));
        push_conditions(&mut b, q);
        b.push(" ORDER BY s.created_at DESC, s.id LIMIT ").push_bind(q.limit as i64);
        b.push(" OFFSET ").push_bind(q.offset as i64);
        let rows = b.build().fetch_all(&self.read).await.map_err(db)?;
        self.deliveries_from_rows(&rows).await
    }

    async fn count_deliveries(&self, q: &DeliveryQuery) -> Result<u64, StoreError> {
        let mut b: QueryBuilder<Sqlite> = QueryBuilder::new("SELECT COUNT(*) FROM delivery_state s WHERE 1 = 1");
        push_conditions(&mut b, q);
        let n: i64 = b.build_query_scalar().fetch_one(&self.read).await.map_err(db)?;
        Ok(u64::try_from(n).unwrap_or(0))
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
                let alert: Option<i32> = sqlx::query_scalar("SELECT 1 FROM alerts WHERE id = ?")
                    .bind(&rule)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db)?;
                return Err(StoreError::Conflict(match alert {
                    // Its next evaluation or reminder says how it stands now.
                    Some(_) => format!(
                        "delivery {id} is a notification of alert {rule}, which is not redelivered: \
                         the alert notifies again at its next change of level or reminder"
                    ),
                    None => format!("delivery {id}'s rule {rule} was deleted"),
                }));
            }
            Some((_, _, Some(spec))) => spec,
        };
        let attempts: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM delivery_attempts WHERE delivery_id = ?")
            .bind(id.to_string())
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?;
        if attempts >= MAX_ATTEMPTS_PER_DELIVERY as i64 {
            return Err(StoreError::Conflict(format!(
                "delivery {id} has been attempted {attempts} times, the most one delivery keeps \
                 ({MAX_ATTEMPTS_PER_DELIVERY}); it is not redelivered again"
            )));
        }
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
             WHERE s.status = ?1 AND s.created_at >= ?2 AND s.created_at < ?3 AND (?4 IS NULL OR s.rule_id = ?4) \
             AND (SELECT COUNT(*) FROM delivery_attempts a WHERE a.delivery_id = s.id) < ?5",
        )
        .bind(which.status.as_str())
        .bind(which.since.to_naive_string())
        .bind(which.until.to_naive_string())
        .bind(which.rule.map(|r| r.to_string()))
        .bind(MAX_ATTEMPTS_PER_DELIVERY as i64)
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
        let rows: Vec<SentTo> = sqlx::query_as(
            "SELECT id, url, headers, signing_secret, webhook_id FROM outbox WHERE id IN (SELECT value FROM json_each(?))",
        )
        .bind(serde_json::to_string(ids).unwrap_or_else(|_| "[]".into()))
        .fetch_all(&mut **tx)
        .await
        .map_err(db)?;
        let mut by_target: HashMap<Target, Vec<String>> = HashMap::new();
        for (id, url, headers, sent_secret, webhook) in rows {
            let sent = self.targets.open(&self.keys, SealedTarget { url, headers, secret: sent_secret })?;
            let webhook = webhook.map(|w| parse_id(&w, "outbox.webhook_id")).transpose()?;
            by_target.entry(redelivery_target(&spec, webhook, &sent, now)).or_default().push(id);
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

/// The conditions of a deliveries query (rule, status, time span), after a `WHERE`.
fn push_conditions(b: &mut QueryBuilder<'_, Sqlite>, q: &DeliveryQuery) {
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
}

#[cfg(test)]
mod tests;
