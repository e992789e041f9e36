//! The SQLite store's rule engine tables: rules, rule logs, cycles, outbox.

use std::collections::HashSet;

use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Row, Sqlite};

use crate::error::db;
use crate::outbox::insert_outbox;
use crate::{CHUNK, RUN_COLUMNS, SqliteStore, insert_feedback, next_seq, parse_id, push_in, req_ts, run_from_row};
use runhook_core::model::{Rule, RuleId, RuleSpec, RunId, RunRecord, Timestamp};
use runhook_core::secrets::Keyring;
use runhook_store::rules::{outcome_from, outcome_json};
use runhook_store::{CycleCommit, CycleSummary, RuleRunLog, RuleState, StoreError};

fn rule_from_row(keys: &Keyring, row: &SqliteRow) -> Result<Rule, StoreError> {
    Ok(Rule {
        id: parse_id(&row.try_get::<String, _>("id").map_err(db)?, "rules.id")?,
        spec: stored_spec(keys, &row.try_get::<String, _>("spec").map_err(db)?)?,
        created_at: req_ts(row.try_get("created_at").map_err(db)?, "rules.created_at")?,
        updated_at: req_ts(row.try_get("updated_at").map_err(db)?, "rules.updated_at")?,
        created_seq: row.try_get("created_seq").map_err(db)?,
    })
}

/// The spec as stored: URLs, header values and the signing secret sealed.
pub(super) fn spec_json(keys: &Keyring, spec: &RuleSpec) -> Result<String, StoreError> {
    let mut sealed = spec.clone();
    map_secrets(&mut sealed, |v| Ok(keys.seal(v)))?;
    serde_json::to_string(&sealed).map_err(|e| StoreError::Corrupt { column: "rules.spec", detail: e.to_string() })
}

/// A spec as stored (JSON, secrets sealed), opened.
pub(super) fn stored_spec(keys: &Keyring, text: &str) -> Result<RuleSpec, StoreError> {
    let spec = serde_json::from_str::<RuleSpec>(text)
        .map_err(|e| StoreError::Corrupt { column: "rules.spec", detail: e.to_string() })?;
    open_spec(keys, spec)
}

fn open_spec(keys: &Keyring, mut spec: RuleSpec) -> Result<RuleSpec, StoreError> {
    map_secrets(&mut spec, |v| {
        keys.open(v).map_err(|e| StoreError::Corrupt { column: "rules.spec", detail: e.to_string() })
    })?;
    Ok(spec)
}

/// Applies `f` to every secret a spec holds.
pub(super) fn map_secrets(
    spec: &mut RuleSpec,
    mut f: impl FnMut(&str) -> Result<String, StoreError>,
) -> Result<(), StoreError> {
    for w in &mut spec.webhooks {
        w.url = f(&w.url)?;
        for v in w.headers.iter_mut().flat_map(|h| h.values_mut()) {
            *v = f(v)?;
        }
    }
    if let Some(s) = &mut spec.signing_secret {
        *s = f(s)?;
    }
    if let Some(r) = &mut spec.retired_signing_secret {
        r.secret = f(&r.secret)?;
    }
    Ok(())
}

const RULE_COLUMNS: &str = "id, spec, created_at, updated_at, created_seq";

impl SqliteStore {
    pub(super) async fn create_rule_impl(&self, id: RuleId, spec: &RuleSpec) -> Result<Rule, StoreError> {
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
        .bind(spec_json(&self.keys, spec)?)
        .bind(now.to_naive_string())
        .bind(now.to_naive_string())
        .bind(seq)
        .bind(watermark)
        .bind(now.to_naive_string())
        .execute(&mut *tx)
        .await.map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(Rule { id, spec: spec.clone(), created_at: now, updated_at: now, created_seq: seq })
    }

    pub(super) async fn update_rule_impl(&self, id: RuleId, spec: &RuleSpec) -> Result<Rule, StoreError> {
        let now = Timestamp::now();
        let done = sqlx::query("UPDATE rules SET spec = ?, updated_at = ? WHERE id = ?")
            .bind(spec_json(&self.keys, spec)?)
            .bind(now.to_naive_string())
            .bind(id.to_string())
            .execute(&self.write)
            .await
            .map_err(db)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::RuleNotFound(id));
        }
        self.get_rule_impl(id).await?.ok_or(StoreError::RuleNotFound(id))
    }

    pub(super) async fn delete_rule_impl(&self, id: RuleId) -> Result<bool, StoreError> {
        let mut tx = self.write.begin().await.map_err(db)?;
        let done =
            sqlx::query("DELETE FROM rules WHERE id = ?").bind(id.to_string()).execute(&mut *tx).await.map_err(db)?;
        for table in ["rule_runs", "rule_cycles"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE rule_id = ?"))
                .bind(id.to_string())
                .execute(&mut *tx)
                .await
                .map_err(db)?;
        }
        // Pending deliveries go with the rule; finished ones stay listed.
        sqlx::query(
            "DELETE FROM outbox WHERE id IN (SELECT id FROM delivery_state WHERE rule_id = ? AND status = 'pending')",
        )
        .bind(id.to_string())
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        sqlx::query("DELETE FROM delivery_state WHERE rule_id = ? AND status = 'pending'")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(done.rows_affected() > 0)
    }

    pub(super) async fn get_rule_impl(&self, id: RuleId) -> Result<Option<Rule>, StoreError> {
        let row = sqlx::query(&format!("SELECT {RULE_COLUMNS} FROM rules WHERE id = ?"))
            .bind(id.to_string())
            .fetch_optional(&self.read)
            .await
            .map_err(db)?;
        row.as_ref().map(|r| rule_from_row(&self.keys, r)).transpose()
    }

    pub(super) async fn list_rules_impl(&self) -> Result<Vec<Rule>, StoreError> {
        let rows = sqlx::query(&format!("SELECT {RULE_COLUMNS} FROM rules ORDER BY created_at, id"))
            .fetch_all(&self.read)
            .await
            .map_err(db)?;
        rows.iter().map(|r| rule_from_row(&self.keys, r)).collect()
    }

    pub(super) async fn rule_state_impl(&self, id: RuleId) -> Result<Option<RuleState>, StoreError> {
        let row = sqlx::query("SELECT watermark, window_end FROM rules WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&self.read)
            .await
            .map_err(db)?;
        match row {
            None => Ok(None),
            Some(row) => Ok(Some(RuleState {
                watermark: row.try_get("watermark").map_err(db)?,
                window_end: req_ts(row.try_get("window_end").map_err(db)?, "rules.window_end")?,
            })),
        }
    }

    pub(super) async fn cycle_candidates_impl(
        &self,
        rule: &Rule,
        after: i64,
        upto: i64,
        limit: usize,
    ) -> Result<Vec<RunRecord>, StoreError> {
        let mut b: QueryBuilder<Sqlite> =
            QueryBuilder::new(format!("SELECT {RUN_COLUMNS} FROM runs WHERE end_time IS NOT NULL AND session_id = "));
        b.push_bind(rule.spec.session_id.to_string());
        b.push(" AND seq > ").push_bind(after).push(" AND seq <= ").push_bind(upto);
        // Runs from before the rule existed only count when backfilling.
        b.push(" AND (seq > ").push_bind(rule.created_seq);
        match rule.spec.backfill_from {
            Some(from) => b.push(" OR start_time >= ").push_bind(from.to_naive_string()).push(")"),
            None => b.push(")"),
        };
        b.push(" ORDER BY seq LIMIT ").push_bind(limit as i64);
        let rows = b.build().fetch_all(&self.read).await.map_err(db)?;
        rows.iter().map(run_from_row).collect()
    }

    pub(super) async fn actioned_impl(&self, rule: RuleId, runs: &[RunId]) -> Result<HashSet<RunId>, StoreError> {
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

    pub(super) async fn commit_cycle_impl(&self, c: CycleCommit) -> Result<(), StoreError> {
        let mut tx = self.write.begin().await.map_err(db)?;
        let moved = sqlx::query("UPDATE rules SET watermark = ?, window_end = ? WHERE id = ? AND watermark = ?")
            .bind(c.to_watermark)
            .bind(c.window_end.to_naive_string())
            .bind(c.rule_id.to_string())
            .bind(c.from_watermark)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        if moved.rows_affected() == 0 {
            return Err(StoreError::Conflict(format!("rule {} moved on (or was deleted) during its cycle", c.rule_id)));
        }
        for l in &c.logs {
            sqlx::query(
                "INSERT INTO rule_runs (rule_id, run_id, run_name, run_type, session_id, thread_id, window_start, window_end, \
                 applied_at, webhooks, evaluators) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            )
            .bind(l.rule_id.to_string())
            .bind(l.run_id.to_string())
            .bind(&l.run_name)
            .bind(&l.run_type)
            .bind(l.session_id.to_string())
            .bind(&l.thread_id)
            .bind(l.window_start.to_naive_string())
            .bind(l.window_end.to_naive_string())
            .bind(l.applied_at.to_naive_string())
            .bind(outcome_json(&l.webhooks))
            .bind(outcome_json(&l.evaluators))
            .execute(&mut *tx)
            .await.map_err(db)?;
        }
        for o in &c.outbox {
            insert_outbox(&mut tx, self, o).await?;
        }
        let now = Timestamp::now();
        for f in &c.feedback {
            if insert_feedback(&mut tx, f).await?
                && let Some(run) = f.run_id
            {
                let seq = next_seq(&mut tx, 1).await?;
                sqlx::query("UPDATE runs SET seq = ?, modified_at = ? WHERE id = ?")
                    .bind(seq)
                    .bind(now.to_naive_string())
                    .bind(run.to_string())
                    .execute(&mut *tx)
                    .await
                    .map_err(db)?;
            }
        }
        sqlx::query("INSERT INTO rule_cycles (rule_id, window_start, window_end, candidates, actioned, error) VALUES (?, ?, ?, ?, ?, ?)")
            .bind(c.rule_id.to_string())
            .bind(c.window_start.to_naive_string())
            .bind(c.window_end.to_naive_string())
            .bind(c.candidates as i64)
            .bind(c.logs.len() as i64)
            .bind(&c.error)
            .execute(&mut *tx)
            .await.map_err(db)?;
        tx.commit().await.map_err(db)?;
        if !c.outbox.is_empty() {
            self.bell.ring();
        }
        Ok(())
    }

    pub(super) async fn rule_logs_impl(
        &self,
        rule: RuleId,
        limit: usize,
        offset: usize,
    ) -> Result<Vec<RuleRunLog>, StoreError> {
        let rows = sqlx::query(
            "SELECT rule_id, run_id, run_name, run_type, session_id, thread_id, window_start, window_end, applied_at, \
             webhooks, evaluators FROM rule_runs WHERE rule_id = ? ORDER BY applied_at DESC, run_id LIMIT ? OFFSET ?",
        )
        .bind(rule.to_string())
        .bind(limit as i64)
        .bind(offset as i64)
        .fetch_all(&self.read)
        .await
        .map_err(db)?;
        rows.iter()
            .map(|row| {
                Ok(RuleRunLog {
                    rule_id: parse_id(&row.try_get::<String, _>("rule_id").map_err(db)?, "rule_runs.rule_id")?,
                    run_id: parse_id(&row.try_get::<String, _>("run_id").map_err(db)?, "rule_runs.run_id")?,
                    run_name: row.try_get("run_name").map_err(db)?,
                    run_type: row.try_get("run_type").map_err(db)?,
                    session_id: parse_id(&row.try_get::<String, _>("session_id").map_err(db)?, "rule_runs.session_id")?,
                    thread_id: row.try_get("thread_id").map_err(db)?,
                    window_start: req_ts(row.try_get("window_start").map_err(db)?, "rule_runs.window_start")?,
                    window_end: req_ts(row.try_get("window_end").map_err(db)?, "rule_runs.window_end")?,
                    applied_at: req_ts(row.try_get("applied_at").map_err(db)?, "rule_runs.applied_at")?,
                    webhooks: outcome_from(row.try_get("webhooks").map_err(db)?),
                    evaluators: outcome_from(row.try_get("evaluators").map_err(db)?),
                })
            })
            .collect()
    }

    pub(super) async fn rule_cycles_impl(&self, rule: RuleId, limit: usize) -> Result<Vec<CycleSummary>, StoreError> {
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
}
