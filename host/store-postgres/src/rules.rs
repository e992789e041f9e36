//! [`RuleStore`] on Postgres: the rules (specs stored with their secrets
//! sealed), each rule's watermark (a change-sequence position: two
//! columns), its log and its cycles. A cycle's commit is composed by
//! `runhook_store::rules::commit_cycle`; its statements are in [`crate::tx`].

use std::collections::HashSet;

use async_trait::async_trait;
use sqlx::postgres::PgRow;

use runhook_core::model::{ChangeSeq, Rule, RuleId, RuleSpec, RunId, RunRecord, SessionId, Timestamp};
use runhook_core::secrets::Keyring;
use runhook_store::rules::{commit_cycle, outcome_from, stats_from};
use runhook_store::secrets::{open_spec, seal_spec};
use runhook_store::{
    Announcement, CycleCommit, CycleSummary, DueThreads, RuleLogCursor, RuleRunLog, RuleState, RuleStats, RuleStore,
    StoreError,
};

use crate::PgStore;
use crate::error::db;
use crate::plugins::set_rule_plugins;
use crate::rows::{LEAN_RUN_COLUMNS, at, get, run_from_row, seq, time, uuids};
use crate::tx::{HORIZON, Tx, below};

const RULE_COLUMNS: &str = "id, spec, created_at, updated_at, created_xid, created_seq";

fn rule_from_row(keys: &Keyring, row: &PgRow) -> Result<Rule, StoreError> {
    Ok(Rule {
        id: RuleId(get(row, "id")?),
        spec: open_spec(keys, &get::<String>(row, "spec")?)?,
        created_at: time(row, "created_at")?,
        updated_at: time(row, "updated_at")?,
        created_seq: seq(get(row, "created_xid")?, get(row, "created_seq")?),
    })
}

#[async_trait]
impl RuleStore for PgStore {
    async fn create_rule(&self, id: RuleId, spec: &RuleSpec) -> Result<Rule, StoreError> {
        let now = Timestamp::now();
        let horizon: i64 = sqlx::query_scalar(HORIZON).fetch_one(&self.pool).await.map_err(db)?;
        let created = below(horizon);
        let watermark = if spec.backfill_from.is_some() { ChangeSeq::START } else { created };
        let ((cx, cs), (wx, ws)) = (created.parts(), watermark.parts());
        let mut tx = self.pool.begin().await.map_err(db)?;
        sqlx::query(
            "INSERT INTO rules (id, spec, created_at, updated_at, created_xid, created_seq, wm_xid, wm_seq, window_end) \
             VALUES ($1, $2, $3, $3, $4, $5, $6, $7, $3)",
        )
        .bind(id.0)
        .bind(seal_spec(&self.keys, spec)?)
        .bind(at(now))
        .bind(cx)
        .bind(cs)
        .bind(wx)
        .bind(ws)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        set_rule_plugins(&mut tx, id, spec).await?;
        tx.commit().await.map_err(db)?;
        Ok(Rule { id, spec: spec.clone(), created_at: now, updated_at: now, created_seq: created })
    }

    async fn update_rule(&self, id: RuleId, spec: &RuleSpec) -> Result<Rule, StoreError> {
        let sql = format!("UPDATE rules SET spec = $1, updated_at = $2 WHERE id = $3 RETURNING {RULE_COLUMNS}");
        let mut tx = self.pool.begin().await.map_err(db)?;
        let row = sqlx::query(&sql)
            .bind(seal_spec(&self.keys, spec)?)
            .bind(at(Timestamp::now()))
            .bind(id.0)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?;
        let rule = row.map(|r| rule_from_row(&self.keys, &r)).transpose()?.ok_or(StoreError::RuleNotFound(id))?;
        set_rule_plugins(&mut tx, id, spec).await?;
        tx.commit().await.map_err(db)?;
        Ok(rule)
    }

    async fn delete_rule(&self, id: RuleId) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        let done = sqlx::query("DELETE FROM rules WHERE id = $1").bind(id.0).execute(&mut *tx).await.map_err(db)?;
        for table in ["rule_runs", "rule_cycles", "rule_thread_runs"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE rule_id = $1"))
                .bind(id.0)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
        }
        crate::outbox::drop_pending(&mut tx, id.0).await?;
        tx.commit().await.map_err(db)?;
        Ok(done.rows_affected() > 0)
    }

    async fn get_rule(&self, id: RuleId) -> Result<Option<Rule>, StoreError> {
        let row = sqlx::query(&format!("SELECT {RULE_COLUMNS} FROM rules WHERE id = $1"))
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        row.as_ref().map(|r| rule_from_row(&self.keys, r)).transpose()
    }

    async fn list_rules(&self) -> Result<Vec<Rule>, StoreError> {
        let rows = sqlx::query(&format!("SELECT {RULE_COLUMNS} FROM rules ORDER BY created_at, id"))
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        rows.iter().map(|r| rule_from_row(&self.keys, r)).collect()
    }

    async fn rule_state(&self, id: RuleId) -> Result<Option<RuleState>, StoreError> {
        let row = sqlx::query("SELECT wm_xid, wm_seq, window_end FROM rules WHERE id = $1")
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        row.map(|row| {
            Ok(RuleState {
                watermark: seq(get(&row, "wm_xid")?, get(&row, "wm_seq")?),
                window_end: time(&row, "window_end")?,
            })
        })
        .transpose()
    }

    async fn change_seq(&self) -> Result<ChangeSeq, StoreError> {
        let horizon: i64 = sqlx::query_scalar(HORIZON).fetch_one(&self.pool).await.map_err(db)?;
        Ok(below(horizon))
    }

    async fn window_runs(
        &self,
        project: SessionId,
        after: ChangeSeq,
        upto: ChangeSeq,
        limit: usize,
    ) -> Result<Vec<RunRecord>, StoreError> {
        let ((ax, aseq), (ux, useq)) = (after.parts(), upto.parts());
        let sql = format!(
            "SELECT {LEAN_RUN_COLUMNS} FROM runs WHERE session_id = $1 AND end_time IS NOT NULL \
             AND (change_xid, seq) > ($2, $3) AND (change_xid, seq) <= ($4, $5) \
             ORDER BY change_xid, seq LIMIT $6"
        );
        let rows = sqlx::query(&sql)
            .bind(project.0)
            .bind(ax)
            .bind(aseq)
            .bind(ux)
            .bind(useq)
            .bind(limit as i64)
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        rows.iter().map(run_from_row).collect()
    }

    async fn rules_acted_on(&self, run: RunId) -> Result<Vec<RuleId>, StoreError> {
        let ids: Vec<uuid::Uuid> = sqlx::query_scalar("SELECT rule_id FROM rule_runs WHERE run_id = $1")
            .bind(run.0)
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        Ok(ids.into_iter().map(RuleId).collect())
    }

    async fn prune_cycles(&self, before: Timestamp, limit: usize) -> Result<usize, StoreError> {
        let done = sqlx::query(
            "DELETE FROM rule_cycles WHERE id IN (SELECT c.id FROM rule_cycles c WHERE c.window_end < $1 \
             AND c.id < (SELECT MAX(n.id) FROM rule_cycles n WHERE n.rule_id = c.rule_id) ORDER BY c.id LIMIT $2)",
        )
        .bind(at(before))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(usize::try_from(done.rows_affected()).unwrap_or(usize::MAX))
    }

    async fn due_threads(&self, rule: RuleId, idle_before: Timestamp, limit: usize) -> Result<DueThreads, StoreError> {
        crate::threads::due(self, rule, idle_before, limit).await
    }

    async fn actioned(&self, rule: RuleId, runs: &[RunId]) -> Result<HashSet<RunId>, StoreError> {
        let ids: Vec<uuid::Uuid> =
            sqlx::query_scalar("SELECT run_id FROM rule_runs WHERE rule_id = $1 AND run_id = ANY($2)")
                .bind(rule.0)
                .bind(uuids(runs, |i| i.0))
                .fetch_all(&self.pool)
                .await
                .map_err(db)?;
        Ok(ids.into_iter().map(RunId).collect())
    }

    async fn commit_cycle(&self, c: CycleCommit) -> Result<(), StoreError> {
        let mut tx = Tx::begin(self).await?;
        commit_cycle(&mut tx, &c).await?;
        if c.queues_deliveries() {
            crate::outbox::notify_queued(&mut tx.tx).await?;
        }
        tx.commit().await?;
        if c.queues_deliveries() {
            self.bell.ring();
        }
        Ok(())
    }

    async fn horizon_lag(&self) -> Result<std::time::Duration, StoreError> {
        // The horizon is the oldest transaction id still running anywhere
        // on the server; its age is how far behind the rules are held.
        let seconds: Option<f64> = sqlx::query_scalar(
            "SELECT EXTRACT(EPOCH FROM now() - min(xact_start))::float8 FROM pg_stat_activity WHERE backend_xid IS NOT NULL",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(db)?;
        Ok(std::time::Duration::from_secs_f64(seconds.unwrap_or(0.0).max(0.0)))
    }

    async fn rule_logs(&self, rule: RuleId, limit: usize, offset: usize) -> Result<Vec<RuleRunLog>, StoreError> {
        let rows = sqlx::query(
            "SELECT rule_id, run_id, run_name, run_type, session_id, thread_id, window_start, window_end, applied_at, \
             webhooks, evaluators, add_to_dataset, add_to_annotation_queue FROM rule_runs WHERE rule_id = $1 ORDER BY applied_at DESC, run_id LIMIT $2 OFFSET $3",
        )
        .bind(rule.0)
        .bind(limit as i64)
        .bind(offset as i64)
        .fetch_all(&self.pool)
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
        let (at_time, run) = after.map(|c| (at(c.applied_at), c.run_id.0)).unzip();
        let rows = sqlx::query(
            "SELECT rule_id, run_id, run_name, run_type, session_id, thread_id, window_start, window_end, applied_at, \
             webhooks, evaluators, add_to_dataset, add_to_annotation_queue FROM rule_runs WHERE rule_id = $1 \
             AND ($2::timestamptz IS NULL OR applied_at < $2 OR (applied_at = $2 AND run_id > $3)) \
             ORDER BY applied_at DESC, run_id LIMIT $4",
        )
        .bind(rule.0)
        .bind(at_time)
        .bind(run)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.iter().map(log_from_row).collect()
    }

    fn rule_signals(&self) -> &std::sync::Arc<runhook_core::model::signals::RuleSignals> {
        &self.signals
    }

    async fn announce(&self, what: Announcement) -> Result<(), StoreError> {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(crate::notify::RULES)
            .bind(what.to_text())
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn rule_cycles(&self, rule: RuleId, limit: usize) -> Result<Vec<CycleSummary>, StoreError> {
        let rows = sqlx::query(
            "SELECT window_start, window_end, candidates, actioned, error FROM rule_cycles WHERE rule_id = $1 \
             ORDER BY id DESC LIMIT $2",
        )
        .bind(rule.0)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.iter()
            .map(|row| {
                Ok(CycleSummary {
                    window_start: time(row, "window_start")?,
                    window_end: time(row, "window_end")?,
                    candidates: get(row, "candidates")?,
                    actioned: get(row, "actioned")?,
                    error: get(row, "error")?,
                })
            })
            .collect()
    }

    async fn record_failed_cycle(&self, rule: RuleId, c: &CycleSummary) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO rule_cycles (rule_id, window_start, window_end, candidates, actioned, error) \
             SELECT id, $1, $2, $3, $4, $5 FROM rules WHERE id = $6",
        )
        .bind(at(c.window_start))
        .bind(at(c.window_end))
        .bind(c.candidates)
        .bind(c.actioned)
        .bind(&c.error)
        .bind(rule.0)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn rule_stats(&self, since: Timestamp, rule: Option<RuleId>) -> Result<Vec<RuleStats>, StoreError> {
        let since = at(since);
        let rule = rule.map(|r| r.0);
        let cycles: Vec<(uuid::Uuid, i64, i64, i64, i64)> = sqlx::query_as(
            "SELECT rule_id, COUNT(*), COUNT(error), COALESCE(SUM(candidates), 0)::bigint, \
             COALESCE(SUM(actioned), 0)::bigint FROM rule_cycles WHERE window_end >= $1 \
             AND ($2::uuid IS NULL OR rule_id = $2) GROUP BY rule_id",
        )
        .bind(since)
        .bind(rule)
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        let deliveries: Vec<(uuid::Uuid, String, i64)> = sqlx::query_as(
            "SELECT rule_id, status, COUNT(*) FROM delivery_state WHERE created_at >= $1 \
             AND ($2::uuid IS NULL OR rule_id = $2) GROUP BY rule_id, status",
        )
        .bind(since)
        .bind(rule)
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        Ok(stats_from(
            cycles.into_iter().map(|(id, n, failed, seen, matched)| (RuleId(id), [n, failed, seen, matched])).collect(),
            deliveries.into_iter().map(|(id, status, n)| (RuleId(id), status, n)).collect(),
        ))
    }
}

/// A rule log line as read back.
fn log_from_row(row: &PgRow) -> Result<RuleRunLog, StoreError> {
    Ok(RuleRunLog {
        rule_id: RuleId(get(row, "rule_id")?),
        run_id: RunId(get(row, "run_id")?),
        run_name: get(row, "run_name")?,
        run_type: get(row, "run_type")?,
        session_id: SessionId(get(row, "session_id")?),
        thread_id: get(row, "thread_id")?,
        window_start: time(row, "window_start")?,
        window_end: time(row, "window_end")?,
        applied_at: time(row, "applied_at")?,
        webhooks: outcome_from(get(row, "webhooks")?),
        evaluators: outcome_from(get(row, "evaluators")?),
        add_to_dataset: outcome_from(get(row, "add_to_dataset")?),
        add_to_annotation_queue: outcome_from(get(row, "add_to_annotation_queue")?),
    })
}
