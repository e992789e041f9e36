//! [`OutboxStore`] on Postgres: the worker's due reads, claims and
//! records, listing deliveries, redelivery and pruning. Row shapes are in
//! `decode`, the worker's writes in `journal`.
//!
//! A delivery lives in two tables, as in the embedded store: `outbox` holds
//! what it sends, written once; `delivery_state` where it stands, updated
//! by each claim and record, so recording never rewrites a body.
//! URLs, header values and signing secrets are sealed on the way in and
//! opened on the way out ([`runhook_store::sealed`]).

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use sqlx::postgres::PgRow;
use sqlx::{Postgres, QueryBuilder, Transaction};
use uuid::Uuid;

use runhook_core::model::{DeliveryId, Timestamp, WebhookId};
use runhook_store::outbox::{MAX_ATTEMPTS_PER_DELIVERY, endpoint_key, redelivery_target};
use runhook_store::sealed::{SealedTarget, Target};
use runhook_store::secrets::open_spec;
use runhook_store::{
    AttemptRecord, ClaimOutcome, ClaimTerms, Delivery, DeliveryQuery, DeliveryRecord, DuePage, DueQuery, OutboxBell,
    OutboxStore, Redelivery, StoreError,
};

use crate::PgStore;
use crate::error::db;
use crate::rows::{at, get, opt_time};

mod decode;
mod journal;

pub(crate) use decode::insert_outbox;

/// Deletes the deliveries of rule (or alert) `source` still pending, inside
/// `tx` (their state by the foreign key): they go with it; finished ones
/// stay listed.
pub(crate) async fn drop_pending(tx: &mut Transaction<'static, Postgres>, source: Uuid) -> Result<(), StoreError> {
    sqlx::query(
        "DELETE FROM outbox WHERE id IN (SELECT id FROM delivery_state WHERE rule_id = $1 AND status = 'pending')",
    )
    .bind(source)
    .execute(&mut **tx)
    .await
    .map_err(db)?;
    Ok(())
}
use decode::{DELIVERIES, DUE_QUERY, LISTED_COLUMNS, attempt_from_row, due_from_row, listed_from_row};

#[async_trait]
impl OutboxStore for PgStore {
    fn outbox_bell(&self) -> &OutboxBell {
        &self.bell
    }

    async fn due_deliveries(&self, q: &DueQuery) -> Result<DuePage, StoreError> {
        let rows = sqlx::query(DUE_QUERY)
            .bind(at(q.now))
            .bind(q.after.map(|c| at(c.due)))
            .bind(q.after.map(|c| c.id.0))
            .bind(&q.busy)
            .bind(i64::try_from(q.limit).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        let mut page = DuePage { rows: Vec::with_capacity(rows.len()), end: None };
        for row in &rows {
            let (delivery, endpoint, cursor) = due_from_row(self, row)?;
            page.rows.push((delivery, endpoint));
            page.end = Some(cursor);
        }
        Ok(page)
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
        let mut tx = self.pool.begin().await.map_err(db)?;
        let refused = journal::record(&mut tx, records, at(Timestamp::now())).await?;
        let claimed = journal::claim(&mut tx, claims, terms).await?;
        tx.commit().await.map_err(db)?;
        Ok((refused, claimed))
    }

    async fn list_deliveries(&self, q: &DeliveryQuery) -> Result<Vec<Delivery>, StoreError> {
        let mut b: QueryBuilder<Postgres> =
            QueryBuilder::new(format!("SELECT {LISTED_COLUMNS} FROM {DELIVERIES} WHERE true"));
        push_conditions(&mut b, q);
        b.push(" ORDER BY s.created_at DESC, s.id LIMIT ").push_bind(q.limit as i64);
        b.push(" OFFSET ").push_bind(q.offset as i64);
        let rows = b.build().fetch_all(&self.pool).await.map_err(db)?;
        self.deliveries_from_rows(&rows).await
    }

    async fn count_deliveries(&self, q: &DeliveryQuery) -> Result<u64, StoreError> {
        let mut b: QueryBuilder<Postgres> = QueryBuilder::new("SELECT COUNT(*) FROM delivery_state s WHERE true");
        push_conditions(&mut b, q);
        let n: i64 = b.build_query_scalar().fetch_one(&self.pool).await.map_err(db)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn get_delivery(&self, id: DeliveryId) -> Result<Option<Delivery>, StoreError> {
        let rows = sqlx::query(&format!("SELECT {LISTED_COLUMNS} FROM {DELIVERIES} WHERE s.id = $1"))
            .bind(id.0)
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        Ok(self.deliveries_from_rows(&rows).await?.pop())
    }

    async fn redeliver(&self, id: DeliveryId) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        // Locked, so a worker's record or another redelivery of it waits.
        let found: Option<(String, Uuid, Option<String>)> = sqlx::query_as(
            "SELECT s.status, s.rule_id, r.spec FROM delivery_state s LEFT JOIN rules r ON r.id = s.rule_id \
             WHERE s.id = $1 FOR UPDATE OF s",
        )
        .bind(id.0)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db)?;
        let spec = match found {
            None => return Ok(false),
            Some((status, _, _)) if status == "pending" => {
                return Err(StoreError::Conflict(format!("delivery {id} is still pending")));
            }
            Some((_, rule, None)) => {
                let alert: Option<i32> = sqlx::query_scalar("SELECT 1 FROM alerts WHERE id = $1")
                    .bind(rule)
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
        let attempts: i64 = sqlx::query_scalar("SELECT count(*) FROM delivery_attempts WHERE delivery_id = $1")
            .bind(id.0)
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?;
        if attempts >= MAX_ATTEMPTS_PER_DELIVERY as i64 {
            return Err(StoreError::Conflict(format!(
                "delivery {id} has been attempted {attempts} times, the most one delivery keeps \
                 ({MAX_ATTEMPTS_PER_DELIVERY}); it is not redelivered again"
            )));
        }
        self.requeue(&mut tx, &spec, &[id.0]).await?;
        notify_queued(&mut tx).await?;
        tx.commit().await.map_err(db)?;
        self.bell.ring();
        Ok(true)
    }

    async fn redeliver_matching(&self, which: &Redelivery) -> Result<usize, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        // The join leaves out deleted rules' deliveries.
        let found: Vec<(Uuid, Uuid)> = sqlx::query_as(
            "SELECT s.id, s.rule_id FROM delivery_state s JOIN rules r ON r.id = s.rule_id \
             WHERE s.status = $1 AND s.created_at >= $2 AND s.created_at < $3 AND ($4::uuid IS NULL OR s.rule_id = $4) \
             AND (SELECT count(*) FROM delivery_attempts a WHERE a.delivery_id = s.id) < $5 \
             FOR UPDATE OF s",
        )
        .bind(which.status.as_str())
        .bind(at(which.since))
        .bind(at(which.until))
        .bind(which.rule.map(|r| r.0))
        .bind(MAX_ATTEMPTS_PER_DELIVERY as i64)
        .fetch_all(&mut *tx)
        .await
        .map_err(db)?;
        let mut by_rule: BTreeMap<Uuid, Vec<Uuid>> = BTreeMap::new();
        for (id, rule) in found {
            by_rule.entry(rule).or_default().push(id);
        }
        let mut n = 0;
        for (rule, ids) in &by_rule {
            let spec: String = sqlx::query_scalar("SELECT spec FROM rules WHERE id = $1")
                .bind(rule)
                .fetch_one(&mut *tx)
                .await
                .map_err(db)?;
            self.requeue(&mut tx, &spec, ids).await?;
            n += ids.len();
        }
        if n > 0 {
            notify_queued(&mut tx).await?;
        }
        tx.commit().await.map_err(db)?;
        if n > 0 {
            self.bell.ring();
        }
        Ok(n)
    }

    async fn prune_deliveries(&self, before: Timestamp, limit: usize) -> Result<usize, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        // A redelivery finished recently is kept until its own finish is
        // old enough. Rows another replica is pruning are left to it.
        let ids: Vec<Uuid> = sqlx::query_scalar(
            "SELECT id FROM delivery_state WHERE created_at < $1 AND status <> 'pending' AND finished_at < $1 \
             ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED",
        )
        .bind(at(before))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&mut *tx)
        .await
        .map_err(db)?;
        if ids.is_empty() {
            return Ok(0);
        }
        // The state goes with its outbox row (the foreign key cascades).
        for sql in
            ["DELETE FROM delivery_attempts WHERE delivery_id = ANY($1)", "DELETE FROM outbox WHERE id = ANY($1)"]
        {
            sqlx::query(sql).bind(&ids).execute(&mut *tx).await.map_err(db)?;
        }
        tx.commit().await.map_err(db)?;
        Ok(ids.len())
    }

    async fn outbox_stats(&self) -> Result<(i64, Option<Timestamp>), StoreError> {
        let row =
            sqlx::query("SELECT count(*) AS n, min(created_at) AS oldest FROM delivery_state WHERE status = 'pending'")
                .fetch_one(&self.pool)
                .await
                .map_err(db)?;
        Ok((get(&row, "n")?, opt_time(&row, "oldest")?))
    }
}

/// Tells every replica's worker, when `tx` commits, that deliveries are due.
pub(crate) async fn notify_queued(tx: &mut Transaction<'static, Postgres>) -> Result<(), StoreError> {
    sqlx::query("SELECT pg_notify($1, '')").bind(crate::notify::OUTBOX).execute(&mut **tx).await.map_err(db)?;
    Ok(())
}

impl PgStore {
    /// Listed rows with their attempts.
    async fn deliveries_from_rows(&self, rows: &[PgRow]) -> Result<Vec<Delivery>, StoreError> {
        let mut out = rows.iter().map(|r| listed_from_row(&self.keys, r)).collect::<Result<Vec<_>, _>>()?;
        let ids: Vec<Uuid> = out.iter().map(|d| d.id.0).collect();
        let mut history: HashMap<DeliveryId, Vec<AttemptRecord>> = HashMap::new();
        let attempts = sqlx::query(
            "SELECT delivery_id, attempt, started_at, duration_ms, class, status_code, error FROM delivery_attempts \
             WHERE delivery_id = ANY($1) ORDER BY delivery_id, attempt",
        )
        .bind(&ids)
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        for row in &attempts {
            let (id, a) = attempt_from_row(row)?;
            history.entry(id).or_default().push(a);
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
    async fn requeue(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        spec: &str,
        ids: &[Uuid],
    ) -> Result<(), StoreError> {
        let now = Timestamp::now();
        let spec = open_spec(&self.keys, spec)?;
        let rows = sqlx::query("SELECT id, url, headers, signing_secret, webhook_id FROM outbox WHERE id = ANY($1)")
            .bind(ids)
            .fetch_all(&mut **tx)
            .await
            .map_err(db)?;
        let mut by_target: HashMap<Target, Vec<Uuid>> = HashMap::new();
        for row in &rows {
            let sealed = SealedTarget {
                url: get(row, "url")?,
                headers: get(row, "headers")?,
                secret: get(row, "signing_secret")?,
            };
            let sent = self.targets.open(&self.keys, sealed)?;
            let webhook = get::<Option<Uuid>>(row, "webhook_id")?.map(WebhookId);
            by_target.entry(redelivery_target(&spec, webhook, &sent, now)).or_default().push(get(row, "id")?);
        }
        for (target, ids) in by_target {
            let sealed = self.targets.seal(&self.keys, &target);
            sqlx::query("UPDATE outbox SET url = $1, headers = $2, signing_secret = $3 WHERE id = ANY($4)")
                .bind(sealed.url)
                .bind(sealed.headers)
                .bind(sealed.secret)
                .bind(&ids)
                .execute(&mut **tx)
                .await
                .map_err(db)?;
            sqlx::query(
                "UPDATE delivery_state SET status = 'pending', attempts = 0, next_attempt_at = $1, finished_at = NULL, \
                 endpoint = $2 WHERE id = ANY($3)",
            )
            .bind(at(now))
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
fn push_conditions(b: &mut QueryBuilder<'_, Postgres>, q: &DeliveryQuery) {
    if let Some(rule) = q.rule {
        b.push(" AND s.rule_id = ").push_bind(rule.0);
    }
    if let Some(status) = &q.status {
        b.push(" AND s.status = ").push_bind(status.clone());
    }
    if let Some(since) = q.since {
        b.push(" AND s.created_at >= ").push_bind(at(since));
    }
    if let Some(until) = q.until {
        b.push(" AND s.created_at < ").push_bind(at(until));
    }
}
