//! [`Export`] on SQLite: the whole store, page by page, for
//! `runhook migrate-store`. Secrets are read as stored (sealed).

use std::collections::HashMap;

use async_trait::async_trait;
use sqlx::{QueryBuilder, Row, Sqlite};

use runhook_core::model::{
    ChangeSeq, DeliveryId, Feedback, FeedbackId, PluginDigest, RuleId, RunId, RunRecord, Session,
};
use runhook_store::transfer::{Export, ExportedPlugin, StoredDelivery, StoredRule};
use runhook_store::{Attachment, AttemptRecord, PluginStore, RuleRunLog, StoreError, StoredPlugin};

use crate::SqliteStore;
use crate::error::db;
use crate::rows::{
    CHUNK, FEEDBACK_COLUMNS, RUN_COLUMNS, feedback_from_row, log_from_row, opt_id, parse_id, push_in, req_ts,
    run_from_row, seq, seq_value, session_from_row, ts,
};

#[async_trait]
impl Export for SqliteStore {
    async fn export_sessions(&self) -> Result<Vec<Session>, StoreError> {
        let rows = sqlx::query("SELECT id, name, description, extra, start_time FROM sessions ORDER BY id")
            .fetch_all(&self.read)
            .await
            .map_err(db)?;
        rows.iter().map(session_from_row).collect()
    }

    async fn export_runs(&self, after: ChangeSeq, limit: usize) -> Result<Vec<RunRecord>, StoreError> {
        let rows = sqlx::query(&format!("SELECT {RUN_COLUMNS} FROM runs WHERE seq > ? ORDER BY seq LIMIT ?"))
            .bind(seq_value(after))
            .bind(limit as i64)
            .fetch_all(&self.read)
            .await
            .map_err(db)?;
        rows.iter().map(run_from_row).collect()
    }

    async fn export_feedback(&self, after: Option<FeedbackId>, limit: usize) -> Result<Vec<Feedback>, StoreError> {
        let rows = sqlx::query(&format!("SELECT {FEEDBACK_COLUMNS} FROM feedback WHERE id > ? ORDER BY id LIMIT ?"))
            .bind(after.map(|a| a.to_string()).unwrap_or_default())
            .bind(limit as i64)
            .fetch_all(&self.read)
            .await
            .map_err(db)?;
        rows.iter().map(feedback_from_row).collect()
    }

    async fn export_attachments(
        &self,
        after: Option<(RunId, String)>,
        limit: usize,
    ) -> Result<Vec<Attachment>, StoreError> {
        let (run, name) = after.map_or((String::new(), String::new()), |(r, n)| (r.to_string(), n));
        let rows = sqlx::query(
            "SELECT run_id, name, mime, data FROM attachments WHERE (run_id, name) > (?, ?) ORDER BY run_id, name LIMIT ?",
        )
        .bind(run)
        .bind(name)
        .bind(limit as i64)
        .fetch_all(&self.read)
        .await
        .map_err(db)?;
        rows.iter()
            .map(|row| {
                Ok(Attachment {
                    run_id: parse_id(&row.try_get::<String, _>("run_id").map_err(db)?, "attachments.run_id")?,
                    name: row.try_get("name").map_err(db)?,
                    mime: row.try_get("mime").map_err(db)?,
                    data: bytes::Bytes::from(row.try_get::<Vec<u8>, _>("data").map_err(db)?),
                })
            })
            .collect()
    }

    async fn export_plugins(
        &self,
        after: Option<PluginDigest>,
        limit: usize,
    ) -> Result<Vec<ExportedPlugin>, StoreError> {
        let digests: Vec<String> =
            sqlx::query_scalar("SELECT digest FROM plugins WHERE digest > ? ORDER BY digest LIMIT ?")
                .bind(after.as_ref().map_or("", PluginDigest::as_str))
                .bind(limit as i64)
                .fetch_all(&self.read)
                .await
                .map_err(db)?;
        let mut out = Vec::with_capacity(digests.len());
        for digest in digests {
            let digest: PluginDigest = digest.parse().map_err(|e| StoreError::corrupt("plugins.digest", e))?;
            let record = self.get_plugin(&digest).await?;
            let bytes = self.plugin_bytes(&digest).await?;
            if let (Some(record), Some(bytes)) = (record, bytes) {
                out.push(ExportedPlugin { record: StoredPlugin { rules: Vec::new(), ..record }, bytes });
            }
        }
        Ok(out)
    }

    async fn export_rules(&self) -> Result<Vec<StoredRule>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, spec, created_at, updated_at, created_seq, watermark, window_end FROM rules ORDER BY created_at, id",
        )
        .fetch_all(&self.read)
        .await
        .map_err(db)?;
        rows.iter()
            .map(|row| {
                Ok(StoredRule {
                    id: parse_id(&row.try_get::<String, _>("id").map_err(db)?, "rules.id")?,
                    sealed_spec: row.try_get("spec").map_err(db)?,
                    created_at: req_ts(row.try_get("created_at").map_err(db)?, "rules.created_at")?,
                    updated_at: req_ts(row.try_get("updated_at").map_err(db)?, "rules.updated_at")?,
                    created_seq: seq(row.try_get("created_seq").map_err(db)?),
                    watermark: seq(row.try_get("watermark").map_err(db)?),
                    window_end: req_ts(row.try_get("window_end").map_err(db)?, "rules.window_end")?,
                })
            })
            .collect()
    }

    async fn export_logs(&self, after: Option<(RuleId, RunId)>, limit: usize) -> Result<Vec<RuleRunLog>, StoreError> {
        let (rule, run) = after.map_or((String::new(), String::new()), |(r, n)| (r.to_string(), n.to_string()));
        let rows = sqlx::query(
            "SELECT rule_id, run_id, run_name, run_type, session_id, thread_id, window_start, window_end, applied_at, \
             webhooks, evaluators, add_to_dataset, add_to_annotation_queue FROM rule_runs WHERE (rule_id, run_id) > (?, ?) ORDER BY rule_id, run_id LIMIT ?",
        )
        .bind(rule)
        .bind(run)
        .bind(limit as i64)
        .fetch_all(&self.read)
        .await
        .map_err(db)?;
        rows.iter().map(log_from_row).collect()
    }

    async fn export_deliveries(
        &self,
        after: Option<DeliveryId>,
        limit: usize,
    ) -> Result<Vec<StoredDelivery>, StoreError> {
        let rows = sqlx::query(
            "SELECT s.id, s.rule_id, o.webhook_id, o.url, o.headers, o.body, o.run_ids, o.signing_secret, s.created_at, \
             s.endpoint, s.status, s.attempts, s.next_attempt_at, s.last_error, s.finished_at \
             FROM delivery_state s JOIN outbox o ON o.id = s.id WHERE s.id > ? ORDER BY s.id LIMIT ?",
        )
        .bind(after.map(|a| a.to_string()).unwrap_or_default())
        .bind(limit as i64)
        .fetch_all(&self.read)
        .await
        .map_err(db)?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let run_ids: String = row.try_get("run_ids").map_err(db)?;
            out.push(StoredDelivery {
                id: parse_id(&row.try_get::<String, _>("id").map_err(db)?, "delivery_state.id")?,
                rule_id: parse_id(&row.try_get::<String, _>("rule_id").map_err(db)?, "delivery_state.rule_id")?,
                webhook_id: opt_id(row.try_get("webhook_id").map_err(db)?, "outbox.webhook_id")?,
                url: row.try_get("url").map_err(db)?,
                headers: row.try_get("headers").map_err(db)?,
                body: row.try_get("body").map_err(db)?,
                run_ids: serde_json::from_str(&run_ids).map_err(|e| StoreError::corrupt("outbox.run_ids", e))?,
                secret: row.try_get("signing_secret").map_err(db)?,
                created_at: req_ts(row.try_get("created_at").map_err(db)?, "delivery_state.created_at")?,
                endpoint: row.try_get("endpoint").map_err(db)?,
                status: row.try_get("status").map_err(db)?,
                attempts: u32::try_from(row.try_get::<i64, _>("attempts").map_err(db)?).unwrap_or(0),
                next_attempt_at: req_ts(row.try_get("next_attempt_at").map_err(db)?, "delivery_state.next_attempt_at")?,
                last_error: row.try_get("last_error").map_err(db)?,
                finished_at: ts(row.try_get("finished_at").map_err(db)?, "delivery_state.finished_at")?,
                history: Vec::new(),
            });
        }
        let mut history: HashMap<DeliveryId, Vec<AttemptRecord>> = HashMap::new();
        let ids: Vec<String> = out.iter().map(|d| d.id.to_string()).collect();
        for chunk in ids.chunks(CHUNK) {
            let mut b: QueryBuilder<Sqlite> = QueryBuilder::new(
                "SELECT delivery_id, attempt, started_at, duration_ms, class, status_code, error FROM delivery_attempts \
                 WHERE 1 = 1",
            );
            push_in(&mut b, "delivery_id", chunk.iter().cloned());
            b.push(" ORDER BY attempt");
            for row in b.build().fetch_all(&self.read).await.map_err(db)? {
                let (id, a) = crate::outbox::attempt_from_row(&row)?;
                history.entry(id).or_default().push(a);
            }
        }
        for d in &mut out {
            d.history = history.remove(&d.id).unwrap_or_default();
        }
        Ok(out)
    }
}
