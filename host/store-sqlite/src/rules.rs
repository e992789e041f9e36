//! [`RuleStore`] on SQLite: the rules table (specs stored with their
//! secrets sealed), each rule's watermark, its log and its cycles. A
//! cycle's commit is composed by `runhook_store::rules::commit_cycle`; its
//! statements are in [`crate::tx`].

use std::collections::HashSet;

use async_trait::async_trait;
use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Row, Sqlite};

use runhook_core::model::{ChangeSeq, Rule, RuleId, RuleSpec, RunId, RunRecord, SessionId, Timestamp};
use runhook_core::secrets::Keyring;
use runhook_store::rules::commit_cycle;
use runhook_store::secrets::{open_spec, seal_spec};
use runhook_store::{
    Announcement, CycleCommit, CycleSummary, DueThreads, RuleLogCursor, RuleRunLog, RuleState, RuleStats, RuleStore,
    StoreError,
};

use crate::SqliteStore;
use crate::error::db;
use crate::plugins::set_rule_plugins;
use crate::rows::{CHUNK, LEAN_RUN_COLUMNS, log_from_row, parse_id, push_in, req_ts, run_from_row, seq, seq_value};
use crate::tx::Tx;

fn rule_from_row(keys: &Keyring, row: &SqliteRow) -> Result<Rule, StoreError> {
    Ok(Rule {
        id: parse_id(&row.try_get::<String, _>("id").map_err(db)?, "rules.id")?,
        spec: open_spec(keys, &row.try_get::<String, _>("spec").map_err(db)?)?,
        created_at: req_ts(row.try_get("created_at").map_err(db)?, "rules.created_at")?,
        updated_at: req_ts(row.try_get("updated_at").map_err(db)?, "rules.updated_at")?,
        created_seq: seq(row.try_get("created_seq").map_err(db)?),
    })
}

const RULE_COLUMNS: &str = "id, spec, created_at, updated_at, created_seq";

#[async_trait]
impl RuleStore for SqliteStore {
    async fn create_rule(&self, id: RuleId, spec: &RuleSpec) -> Result<Rule, StoreError> {
        let now = Timestamp::now();
        let mut tx = self.write.begin().await.map_err(db)?;
        let seq: i64 = sqlx::query_scalar("SELECT value FROM counters WHERE name = 'change_seq'")
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?;
        let watermark = if spec.backfill_from.is_some() { 0 } else { seq };
        sqlx::query(
            "INSERT INTO rules (id, spec, created_at, updated_at, created_seq, watermark, window_end) VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(id.to_string())
        .bind(seal_spec(&self.keys, spec)?)
        .bind(now.to_naive_string())
        .bind(now.to_naive_string())
        .bind(seq)
        .bind(watermark)
        .bind(now.to_naive_string())
        .execute(&mut *tx)
        .await.map_err(db)?;
        set_rule_plugins(&mut tx, id, spec).await?;
        tx.commit().await.map_err(db)?;
        Ok(Rule { id, spec: spec.clone(), created_at: now, updated_at: now, created_seq: crate::rows::seq(seq) })
    }

    async fn update_rule(&self, id: RuleId, spec: &RuleSpec) -> Result<Rule, StoreError> {
        let now = Timestamp::now();
        let mut tx = self.write.begin().await.map_err(db)?;
        let done = sqlx::query("UPDATE rules SET spec = ?, updated_at = ? WHERE id = ?")
            .bind(seal_spec(&self.keys, spec)?)
            .bind(now.to_naive_string())
            .bind(id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::RuleNotFound(id));
        }
        set_rule_plugins(&mut tx, id, spec).await?;
        tx.commit().await.map_err(db)?;
        self.get_rule(id).await?.ok_or(StoreError::RuleNotFound(id))
    }

    async fn delete_rule(&self, id: RuleId) -> Result<bool, StoreError> {
        let mut tx = self.write.begin().await.map_err(db)?;
        let done =
            sqlx::query("DELETE FROM rules WHERE id = ?").bind(id.to_string()).execute(&mut *tx).await.map_err(db)?;
        for table in ["rule_runs", "rule_cycles", "rule_plugins", "rule_thread_runs"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE rule_id = ?"))
                .bind(id.to_string())
                .execute(&mut *tx)
                .await
                .map_err(db)?;
        }
        crate::outbox::drop_pending(&mut tx, &id.to_string()).await?;
        tx.commit().await.map_err(db)?;
        Ok(done.rows_affected() > 0)
    }

    async fn get_rule(&self, id: RuleId) -> Result<Option<Rule>, StoreError> {
        let row = sqlx::query(&format!("SELECT {RULE_COLUMNS} FROM rules WHERE id = ?"))
            .bind(id.to_string())
            .fetch_optional(&self.read)
            .await
            .map_err(db)?;
        row.as_ref().map(|r| rule_from_row(&self.keys, r)).transpose()
    }

    async fn list_rules(&self) -> Result<Vec<Rule>, StoreError> {
        let rows = sqlx::query(&format!("SELECT {RULE_COLUMNS} FROM rules ORDER BY created_at, id"))
            .fetch_all(&self.read)
            .await
            .map_err(db)?;
        rows.iter().map(|r| rule_from_row(&self.keys, r)).collect()
    }

    async fn rule_state(&self, id: RuleId) -> Result<Option<RuleState>, StoreError> {
        let row = sqlx::query("SELECT watermark, window_end FROM rules WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&self.read)
            .await
            .map_err(db)?;
        match row {
            None => Ok(None),
            Some(row) => Ok(Some(RuleState {
                watermark: seq(row.try_get("watermark").map_err(db)?),
                window_end: req_ts(row.try_get("window_end").map_err(db)?, "rules.window_end")?,
            })),
        }
    }

    async fn window_runs(
        &self,
        project: SessionId,
        after: ChangeSeq,
        upto: ChangeSeq,
        limit: usize,
    ) -> Result<Vec<RunRecord>, StoreError> {
        let (project, after, upto) = (project.to_string(), seq_value(after), seq_value(upto));
        self.window_reader
            .run(move |conn| {
                let sql = format!(
                    "SELECT {LEAN_RUN_COLUMNS} FROM runs WHERE end_time IS NOT NULL AND session_id = ?1 \
                     AND seq > ?2 AND seq <= ?3 ORDER BY seq LIMIT ?4"
                );
                let mut statement = conn.prepare_cached(&sql).map_err(db)?;
                let mut rows = statement.query(rusqlite::params![project, after, upto, limit as i64]).map_err(db)?;
                let mut runs = Vec::new();
                while let Some(row) = rows.next().map_err(db)? {
                    runs.push(run_from_row(row)?);
                }
                Ok(runs)
            })
            .await
    }

    async fn rules_acted_on(&self, run: RunId) -> Result<Vec<RuleId>, StoreError> {
        let ids: Vec<String> = sqlx::query_scalar("SELECT rule_id FROM rule_runs WHERE run_id = ?")
            .bind(run.to_string())
            .fetch_all(&self.read)
            .await
            .map_err(db)?;
        ids.iter().map(|id| parse_id(id, "rule_runs.rule_id")).collect()
    }

    async fn prune_cycles(&self, before: Timestamp, limit: usize) -> Result<usize, StoreError> {
        let done = sqlx::query(
            "DELETE FROM rule_cycles WHERE id IN (SELECT c.id FROM rule_cycles c WHERE c.window_end < ? \
             AND c.id < (SELECT MAX(n.id) FROM rule_cycles n WHERE n.rule_id = c.rule_id) ORDER BY c.id LIMIT ?)",
        )
        .bind(before.to_naive_string())
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .execute(&self.write)
        .await
        .map_err(db)?;
        Ok(usize::try_from(done.rows_affected()).unwrap_or(usize::MAX))
    }

    async fn due_threads(&self, rule: RuleId, idle_before: Timestamp, limit: usize) -> Result<DueThreads, StoreError> {
        crate::threads::due(self, rule, idle_before, limit).await
    }

    async fn actioned(&self, rule: RuleId, runs: &[RunId]) -> Result<HashSet<RunId>, StoreError> {
        let mut out = HashSet::new();
        for chunk in runs.chunks(CHUNK) {
            let mut b: QueryBuilder<Sqlite> = QueryBuilder::new("SELECT run_id FROM rule_runs WHERE rule_id = ");
            b.push_bind(rule.to_string());
            push_in(&mut b, "run_id", chunk.iter().map(ToString::to_string));
            for row in b.build().fetch_all(&self.read).await.map_err(db)? {
                out.insert(parse_id(&row.try_get::<String, _>("run_id").map_err(db)?, "rule_runs.run_id")?);
            }
        }
        Ok(out)
    }

    async fn commit_cycle(&self, c: CycleCommit) -> Result<(), StoreError> {
        let mut tx = Tx::begin(self).await?;
        commit_cycle(&mut tx, &c).await?;
        tx.commit().await?;
        if c.queues_deliveries() {
            self.bell.ring();
        }
        Ok(())
    }

    async fn change_seq(&self) -> Result<ChangeSeq, StoreError> {
        let value: i64 = sqlx::query_scalar("SELECT value FROM counters WHERE name = 'change_seq'")
            .fetch_one(&self.read)
            .await
            .map_err(db)?;
        Ok(seq(value))
    }

    async fn horizon_lag(&self) -> Result<std::time::Duration, StoreError> {
        Ok(std::time::Duration::ZERO)
    }

    async fn rule_logs(&self, rule: RuleId, limit: usize, offset: usize) -> Result<Vec<RuleRunLog>, StoreError> {
        let rows = sqlx::query(
            "SELECT rule_id, run_id, run_name, run_type, session_id, thread_id, window_start, window_end, applied_at, \
             webhooks, evaluators, add_to_dataset, add_to_annotation_queue FROM rule_runs WHERE rule_id = ? ORDER BY applied_at DESC, run_id LIMIT ? OFFSET ?",
        )
        .bind(rule.to_string())
        .bind(limit as i64)
        .bind(offset as i64)
        .fetch_all(&self.read)
        .await
        .map_err(db)?;
        rows.iter().map(log_from_row).collect()
    }

    async fn rule_log_page(
        &self,
        rule: RuleId,
        after: Option<&RuleLogCursor>,
        limit: usize,
    ) -> Result<Vec<RuleRunLog>, StoreError> {
        let (at, run) = after.map(|c| (c.applied_at.to_naive_string(), c.run_id.to_string())).unzip();
        let rows = sqlx::query(
            "SELECT rule_id, run_id, run_name, run_type, session_id, thread_id, window_start, window_end, applied_at, \
             webhooks, evaluators, add_to_dataset, add_to_annotation_queue FROM rule_runs WHERE rule_id = ? \
             AND (? IS NULL OR applied_at < ? OR (applied_at = ? AND run_id > ?)) \
             ORDER BY applied_at DESC, run_id LIMIT ?",
        )
        .bind(rule.to_string())
        .bind(&at)
        .bind(&at)
        .bind(&at)
        .bind(&run)
        .bind(limit as i64)
        .fetch_all(&self.read)
        .await
        .map_err(db)?;
        rows.iter().map(log_from_row).collect()
    }

    fn rule_signals(&self) -> &std::sync::Arc<runhook_core::model::signals::RuleSignals> {
        &self.signals
    }

    async fn announce(&self, what: Announcement) -> Result<(), StoreError> {
        what.ring(&self.signals);
        Ok(())
    }

    async fn rule_cycles(&self, rule: RuleId, limit: usize) -> Result<Vec<CycleSummary>, StoreError> {
        let rows = sqlx::query(
            "SELECT window_start, window_end, candidates, actioned, error FROM rule_cycles WHERE rule_id = ? ORDER BY id DESC LIMIT ?",
        )
        .bind(rule.to_string())
        .bind(limit as i64)
        .fetch_all(&self.read)
        .await.map_err(db)?;
        rows.iter()
            .map(|row| {
                Ok(CycleSummary {
                    window_start: req_ts(row.try_get("window_start").map_err(db)?, "rule_cycles.window_start")?,
                    window_end: req_ts(row.try_get("window_end").map_err(db)?, "rule_cycles.window_end")?,
                    candidates: row.try_get("candidates").map_err(db)?,
                    actioned: row.try_get("actioned").map_err(db)?,
                    error: row.try_get("error").map_err(db)?,
                })
            })
            .collect()
    }

    async fn record_failed_cycle(&self, rule: RuleId, c: &CycleSummary) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO rule_cycles (rule_id, window_start, window_end, candidates, actioned, error) \
             SELECT id, ?, ?, ?, ?, ? FROM rules WHERE id = ?",
        )
        .bind(c.window_start.to_naive_string())
        .bind(c.window_end.to_naive_string())
        .bind(c.candidates)
        .bind(c.actioned)
        .bind(&c.error)
        .bind(rule.to_string())
        .execute(&self.write)
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn rule_stats(&self, since: Timestamp, rule: Option<RuleId>) -> Result<Vec<RuleStats>, StoreError> {
        let since = since.to_naive_string();
        let rule = rule.map(|r| r.to_string());
        let cycles: Vec<(String, i64, i64, i64, i64)> = sqlx::query_as(
            "SELECT rule_id, COUNT(*), COUNT(error), COALESCE(SUM(candidates), 0), COALESCE(SUM(actioned), 0) \
             FROM rule_cycles WHERE window_end >= ? AND (? IS NULL OR rule_id = ?) GROUP BY rule_id",
        )
        .bind(&since)
        .bind(&rule)
        .bind(&rule)
        .fetch_all(&self.read)
        .await
        .map_err(db)?;
        let deliveries: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT rule_id, status, COUNT(*) FROM delivery_state WHERE created_at >= ? AND (? IS NULL OR rule_id = ?) \
             GROUP BY rule_id, status",
        )
        .bind(&since)
        .bind(&rule)
        .bind(&rule)
        .fetch_all(&self.read)
        .await
        .map_err(db)?;
        let cycles = cycles
            .into_iter()
            .map(|(raw, n, failed, seen, matched)| {
                Ok((parse_id(&raw, "rule_cycles.rule_id")?, [n, failed, seen, matched]))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let deliveries = deliveries
            .into_iter()
            .map(|(raw, status, n)| Ok((parse_id(&raw, "delivery_state.rule_id")?, status, n)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(runhook_store::rules::stats_from(cycles, deliveries))
    }
}
