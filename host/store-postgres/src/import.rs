//! [`Import`] on Postgres: the target of `runhook migrate-store`.
//!
//! Runs arrive in the source's change order, a page per transaction.
//! Each keeps its source sequence value and is stamped with its page's
//! transaction id; pages commit one after another, so their ids ascend,
//! and the imported runs compare as they did in the source. A rule's
//! position `(_, n)` from the source (a counter) becomes `(x, n)`, where
//! `x` is the transaction id of the page holding the last run at or
//! below `n`: every run it had processed stays at or below its watermark,
//! every run it had not stays above. Afterwards the sequence continues
//! past the highest value imported, and new writes (with later ids) come
//! after all of it.

use async_trait::async_trait;

use runhook_core::model::{ChangeSeq, Feedback, RuleId, RunRecord, Session};
use runhook_store::ingest::IngestTx;
use runhook_store::rules::CycleTx;
use runhook_store::secrets::open_spec;
use runhook_store::transfer::{ExportedPlugin, Import, StoredDelivery, StoredRule};
use runhook_store::{Attachment, ChangeTx, RuleRunLog, StoreError, ThreadRun};

use crate::PgStore;
use crate::error::db;
use crate::plugins::{insert_plugin, set_rule_plugins};
use crate::rows::{at, json_text, seq};
use crate::tx::Tx;

impl PgStore {
    /// The position here of the source position `(0, n)` (see the module doc).
    async fn translate(&self, position: ChangeSeq) -> Result<ChangeSeq, StoreError> {
        let (_, n) = position.parts();
        if position == ChangeSeq::START {
            return Ok(position);
        }
        let xid: Option<i64> = sqlx::query_scalar("SELECT max(change_xid) FROM runs WHERE seq <= $1")
            .bind(n)
            .fetch_one(&self.pool)
            .await
            .map_err(db)?;
        Ok(seq(xid.unwrap_or(0), n))
    }
}

#[async_trait]
impl Import for PgStore {
    async fn is_empty(&self) -> Result<bool, StoreError> {
        let any: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM sessions) OR EXISTS (SELECT 1 FROM runs) OR EXISTS (SELECT 1 FROM rules) \
             OR EXISTS (SELECT 1 FROM datasets) OR EXISTS (SELECT 1 FROM annotation_queues)",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(db)?;
        Ok(!any)
    }

    async fn import_sessions(&self, sessions: &[Session]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        for s in sessions {
            sqlx::query("INSERT INTO sessions (id, name, description, extra, start_time) VALUES ($1, $2, $3, $4, $5)")
                .bind(s.id.0)
                .bind(&s.name)
                .bind(&s.description)
                .bind(json_text(&s.extra))
                .bind(at(s.start_time))
                .execute(&mut *tx)
                .await
                .map_err(db)?;
        }
        tx.commit().await.map_err(db)
    }

    async fn import_runs(&self, runs: &[RunRecord]) -> Result<(), StoreError> {
        if runs.is_empty() {
            return Ok(());
        }
        let mut tx = Tx::begin(self).await?;
        let xid: i64 =
            sqlx::query_scalar("SELECT pg_current_xact_id()::text::bigint").fetch_one(&mut *tx.tx).await.map_err(db)?;
        let mut stamped: Vec<RunRecord> = runs.to_vec();
        for r in &mut stamped {
            r.seq = seq(xid, r.seq.parts().1);
        }
        let refs: Vec<&RunRecord> = stamped.iter().collect();
        tx.write_many(&refs, false).await?;
        let top = runs.iter().map(|r| r.seq.parts().1).max().unwrap_or(1);
        sqlx::query("SELECT setval('change_seq', GREATEST($1, (SELECT last_value FROM change_seq)))")
            .bind(top.max(1))
            .execute(&mut *tx.tx)
            .await
            .map_err(db)?;
        tx.commit().await
    }

    async fn import_feedback(&self, feedback: &[Feedback]) -> Result<(), StoreError> {
        let mut tx = Tx::begin(self).await?;
        for f in feedback {
            tx.insert_feedback(f).await?;
        }
        tx.commit().await
    }

    async fn import_attachments(&self, attachments: &[Attachment]) -> Result<(), StoreError> {
        let mut tx = Tx::begin(self).await?;
        for a in attachments {
            tx.put_attachment(a).await?;
        }
        tx.commit().await
    }

    async fn import_plugins(&self, plugins: &[ExportedPlugin]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        for p in plugins {
            let r = &p.record;
            insert_plugin(&mut *tx, &r.digest, &r.name, &r.capabilities, &p.bytes, r.created_at).await?;
        }
        tx.commit().await.map_err(db)
    }

    async fn import_rules(&self, rules: &[StoredRule]) -> Result<(), StoreError> {
        let mut translated = Vec::with_capacity(rules.len());
        for r in rules {
            translated.push((r, self.translate(r.created_seq).await?, self.translate(r.watermark).await?));
        }
        let mut tx = self.pool.begin().await.map_err(db)?;
        for (r, created, watermark) in translated {
            let ((cx, cs), (wx, ws)) = (created.parts(), watermark.parts());
            sqlx::query(
                "INSERT INTO rules (id, spec, created_at, updated_at, created_xid, created_seq, wm_xid, wm_seq, window_end) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(r.id.0)
            .bind(&r.sealed_spec)
            .bind(at(r.created_at))
            .bind(at(r.updated_at))
            .bind(cx)
            .bind(cs)
            .bind(wx)
            .bind(ws)
            .bind(at(r.window_end))
            .execute(&mut *tx)
            .await
            .map_err(db)?;
            set_rule_plugins(&mut tx, r.id, &open_spec(&self.keys, &r.sealed_spec)?).await?;
        }
        tx.commit().await.map_err(db)
    }

    async fn import_logs(&self, logs: &[RuleRunLog]) -> Result<(), StoreError> {
        let mut tx = Tx::begin(self).await?;
        tx.insert_logs(logs).await?;
        tx.commit().await
    }

    async fn import_held_runs(&self, rule: RuleId, runs: &[ThreadRun]) -> Result<(), StoreError> {
        let mut tx = Tx::begin(self).await?;
        tx.hold_thread_runs(rule, runs).await?;
        tx.commit().await
    }

    async fn import_deliveries(&self, deliveries: &[StoredDelivery]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        for d in deliveries {
            sqlx::query(
                "INSERT INTO outbox (id, rule_id, url, headers, body, run_ids, signing_secret, created_at, webhook_id) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(d.id.0)
            .bind(d.rule_id.0)
            .bind(&d.url)
            .bind(&d.headers)
            .bind(&d.body)
            .bind(serde_json::to_string(&d.run_ids).unwrap_or_else(|_| "[]".into()))
            .bind(&d.secret)
            .bind(at(d.created_at))
            .bind(d.webhook_id.map(|w| w.0))
            .execute(&mut *tx)
            .await
            .map_err(db)?;
            sqlx::query(
                "INSERT INTO delivery_state (id, rule_id, endpoint, status, attempts, next_attempt_at, created_at, \
                 last_error, finished_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(d.id.0)
            .bind(d.rule_id.0)
            .bind(&d.endpoint)
            .bind(&d.status)
            .bind(i32::try_from(d.attempts).unwrap_or(i32::MAX))
            .bind(at(d.next_attempt_at))
            .bind(at(d.created_at))
            .bind(&d.last_error)
            .bind(d.finished_at.map(at))
            .execute(&mut *tx)
            .await
            .map_err(db)?;
            for a in &d.history {
                sqlx::query(
                    "INSERT INTO delivery_attempts (delivery_id, attempt, started_at, duration_ms, class, status_code, error) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(d.id.0)
                .bind(i32::try_from(a.attempt).unwrap_or(i32::MAX))
                .bind(at(a.started_at))
                .bind(i64::try_from(a.duration_ms).unwrap_or(i64::MAX))
                .bind(&a.class)
                .bind(a.status_code.map(i32::from))
                .bind(&a.error)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            }
        }
        tx.commit().await.map_err(db)
    }
}
