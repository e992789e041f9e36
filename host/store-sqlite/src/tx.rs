//! The statements of a write transaction, behind the store contract's
//! transaction traits: [`IngestTx`] (an ingest's merge), [`CycleTx`] (a
//! cycle's commit) and the [`ChangeTx`] both share. The decisions (what to
//! merge, what to stamp, in which order) are made by `runhook-store`; this
//! file only says them in SQLite.
//!
//! The change sequence is one counter row, `counters.change_seq`, bumped
//! inside the transaction: with one writer, values become visible in the
//! order they were taken.

use std::collections::BTreeSet;

use serde_json::Value;
use sqlx::{QueryBuilder, Sqlite, Transaction};

use runhook_core::model::{ChangeSeq, Example, Feedback, QueueId, RuleId, RunId, RunRecord, SessionId, Timestamp};
use runhook_store::ingest::IngestTx;
use runhook_store::rules::{CycleTx, outcome_json};
use runhook_store::{Attachment, ChangeTx, CycleSummary, Lease, OutboxRow, RuleRunLog, StoreError, ThreadRun};

use crate::SqliteStore;
use crate::error::db;
use crate::rows::{CHUNK, FEEDBACK_COLUMNS, RUN_COLUMNS, parse_id, push_in, run_from_row, seq, seq_value};

/// A write transaction of the store's single write connection.
pub(crate) struct Tx<'s> {
    pub(crate) tx: Transaction<'static, Sqlite>,
    pub(crate) store: &'s SqliteStore,
    /// Projects whose runs this transaction changed: their rules are woken
    /// when it commits.
    changed: BTreeSet<SessionId>,
}

impl<'s> Tx<'s> {
    /// Begins a write transaction (waiting for the write connection).
    pub(crate) async fn begin(store: &'s SqliteStore) -> Result<Self, StoreError> {
        Ok(Self { tx: store.write.begin().await.map_err(db)?, store, changed: BTreeSet::new() })
    }

    /// Commits it, then wakes the rules of the projects whose runs changed.
    pub(crate) async fn commit(self) -> Result<(), StoreError> {
        self.tx.commit().await.map_err(db)?;
        for project in self.changed {
            self.store.signals.runs_changed(project);
        }
        Ok(())
    }

    /// Reserves `n` consecutive values of the change sequence; returns the first.
    async fn next_seq(&mut self, n: usize) -> Result<i64, StoreError> {
        let last: i64 =
            sqlx::query_scalar("UPDATE counters SET value = value + ? WHERE name = 'change_seq' RETURNING value")
                .bind(n as i64)
                .fetch_one(&mut *self.tx)
                .await
                .map_err(db)?;
        Ok(last - n as i64 + 1)
    }

    async fn write_run(&mut self, r: &RunRecord, insert: bool) -> Result<(), StoreError> {
        let sql = if insert {
            format!(
                "INSERT INTO runs ({RUN_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            )
        } else {
            // Same bind order as the insert; the trailing id selects the row.
            let sets: Vec<String> = RUN_COLUMNS.split(',').map(|c| format!("{} = ?", c.trim())).collect();
            format!("UPDATE runs SET {} WHERE id = ?", sets.join(", "))
        };
        let json = |v: &Option<Value>| v.as_ref().map(Value::to_string);
        let ts = |t: &Option<Timestamp>| t.map(|t| t.to_naive_string());
        let mut q = sqlx::query(&sql)
            .bind(r.id.to_string())
            .bind(r.session_id.to_string())
            .bind(r.trace_id.to_string())
            .bind(r.parent_run_id.map(|p| p.to_string()))
            .bind(&r.dotted_order)
            .bind(&r.name)
            .bind(r.run_type.as_str())
            .bind(r.start_time.to_naive_string())
            .bind(ts(&r.end_time))
            .bind(&r.error)
            .bind(json(&r.inputs))
            .bind(json(&r.outputs))
            .bind(json(&r.extra))
            .bind(json(&r.events))
            .bind(json(&r.serialized))
            .bind(serde_json::to_string(&r.tags).unwrap_or_else(|_| "[]".into()))
            .bind(r.reference_example_id.map(|u| u.to_string()))
            .bind(r.prompt_tokens)
            .bind(r.completion_tokens)
            .bind(r.total_tokens)
            .bind(&r.prompt_cost)
            .bind(&r.completion_cost)
            .bind(&r.total_cost)
            .bind(ts(&r.first_token_time))
            .bind(&r.thread_id)
            .bind(seq_value(r.seq))
            .bind(r.inserted_at.to_naive_string())
            .bind(r.modified_at.to_naive_string());
        if !insert {
            q = q.bind(r.id.to_string());
        }
        q.execute(&mut *self.tx).await.map_err(db)?;
        Ok(())
    }
}

impl ChangeTx for Tx<'_> {
    async fn insert_feedback(&mut self, f: &Feedback) -> Result<bool, StoreError> {
        let sql = format!(
            "INSERT INTO feedback ({FEEDBACK_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING"
        );
        let source = serde_json::to_string(&f.feedback_source).unwrap_or_else(|_| r#"{"type":"api"}"#.into());
        let done = sqlx::query(&sql)
            .bind(f.id.to_string())
            .bind(f.run_id.map(|r| r.to_string()))
            .bind(f.trace_id.map(|r| r.to_string()))
            .bind(f.session_id.map(|s| s.to_string()))
            .bind(&f.key)
            .bind(f.score)
            .bind(f.value.as_ref().map(Value::to_string))
            .bind(&f.comment)
            .bind(f.correction.as_ref().map(Value::to_string))
            .bind(source)
            .bind(f.extra.as_ref().map(Value::to_string))
            .bind(f.created_at.to_naive_string())
            .bind(f.modified_at.to_naive_string())
            .execute(&mut *self.tx)
            .await
            .map_err(db)?;
        Ok(done.rows_affected() == 1)
    }

    async fn touch_run(&mut self, run: RunId, now: Timestamp) -> Result<(), StoreError> {
        let seq = self.next_seq(1).await?;
        let project: Option<String> =
            sqlx::query_scalar("UPDATE runs SET seq = ?, modified_at = ? WHERE id = ? RETURNING session_id")
                .bind(seq)
                .bind(now.to_naive_string())
                .bind(run.to_string())
                .fetch_optional(&mut *self.tx)
                .await
                .map_err(db)?;
        if let Some(project) = project {
            self.changed.insert(parse_id(&project, "runs.session_id")?);
        }
        Ok(())
    }
}

impl IngestTx for Tx<'_> {
    async fn load_runs(&mut self, ids: &[RunId]) -> Result<Vec<RunRecord>, StoreError> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(CHUNK) {
            let mut b: QueryBuilder<Sqlite> = QueryBuilder::new(format!("SELECT {RUN_COLUMNS} FROM runs WHERE 1 = 1"));
            push_in(&mut b, "id", chunk.iter().map(ToString::to_string));
            for row in b.build().fetch_all(&mut *self.tx).await.map_err(db)? {
                out.push(run_from_row(&row)?);
            }
        }
        Ok(out)
    }

    async fn session_exists(&mut self, id: SessionId) -> Result<bool, StoreError> {
        let exists: Option<i64> = sqlx::query_scalar("SELECT 1 FROM sessions WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&mut *self.tx)
            .await
            .map_err(db)?;
        Ok(exists.is_some())
    }

    async fn session_named(&mut self, name: &str, now: Timestamp) -> Result<SessionId, StoreError> {
        let found: Option<String> = sqlx::query_scalar("SELECT id FROM sessions WHERE name = ?")
            .bind(name)
            .fetch_optional(&mut *self.tx)
            .await
            .map_err(db)?;
        if let Some(id) = found {
            return parse_id(&id, "sessions.id");
        }
        let id = SessionId::new_v4();
        sqlx::query("INSERT INTO sessions (id, name, start_time) VALUES (?, ?, ?)")
            .bind(id.to_string())
            .bind(name)
            .bind(now.to_naive_string())
            .execute(&mut *self.tx)
            .await
            .map_err(db)?;
        Ok(id)
    }

    async fn write_runs(&mut self, runs: &mut [(&mut RunRecord, bool)]) -> Result<(), StoreError> {
        let mut next = self.next_seq(runs.len()).await?;
        for (run, created) in runs.iter_mut() {
            run.seq = seq(next);
            next += 1;
            self.changed.insert(run.session_id);
            self.write_run(run, *created).await?;
        }
        Ok(())
    }

    async fn put_attachment(&mut self, a: &Attachment) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO attachments (run_id, name, mime, data) VALUES (?, ?, ?, ?) \
             ON CONFLICT (run_id, name) DO UPDATE SET mime = excluded.mime, data = excluded.data",
        )
        .bind(a.run_id.to_string())
        .bind(&a.name)
        .bind(&a.mime)
        .bind(a.data.as_ref())
        .execute(&mut *self.tx)
        .await
        .map_err(db)?;
        Ok(())
    }
}

impl CycleTx for Tx<'_> {
    async fn move_watermark(
        &mut self,
        rule: RuleId,
        from: ChangeSeq,
        to: ChangeSeq,
        window_end: Timestamp,
        lease: Option<&Lease>,
    ) -> Result<bool, StoreError> {
        let moved = sqlx::query(
            "UPDATE rules SET watermark = ?1, window_end = ?2 WHERE id = ?3 AND watermark = ?4 \
             AND (?5 IS NULL OR (lease_owner = ?5 AND lease_epoch = ?6))",
        )
        .bind(seq_value(to))
        .bind(window_end.to_naive_string())
        .bind(rule.to_string())
        .bind(seq_value(from))
        .bind(lease.map(|l| l.owner.as_str()))
        .bind(lease.map(|l| l.epoch))
        .execute(&mut *self.tx)
        .await
        .map_err(db)?;
        Ok(moved.rows_affected() > 0)
    }

    async fn insert_logs(&mut self, logs: &[RuleRunLog]) -> Result<(), StoreError> {
        // 13 values a line: 80 lines stay far below SQLite's bound values.
        for chunk in logs.chunks(80) {
            let mut b: QueryBuilder<Sqlite> = QueryBuilder::new(
                "INSERT INTO rule_runs (rule_id, run_id, run_name, run_type, session_id, thread_id, window_start, \
                 window_end, applied_at, webhooks, evaluators, add_to_dataset, add_to_annotation_queue) ",
            );
            b.push_values(chunk, |mut row, l| {
                row.push_bind(l.rule_id.to_string())
                    .push_bind(l.run_id.to_string())
                    .push_bind(l.run_name.clone())
                    .push_bind(l.run_type.clone())
                    .push_bind(l.session_id.to_string())
                    .push_bind(l.thread_id.clone())
                    .push_bind(l.window_start.to_naive_string())
                    .push_bind(l.window_end.to_naive_string())
                    .push_bind(l.applied_at.to_naive_string())
                    .push_bind(outcome_json(&l.webhooks))
                    .push_bind(outcome_json(&l.evaluators))
                    .push_bind(outcome_json(&l.add_to_dataset))
                    .push_bind(outcome_json(&l.add_to_annotation_queue));
            });
            b.push(" ON CONFLICT DO NOTHING");
            b.build().execute(&mut *self.tx).await.map_err(db)?;
        }
        Ok(())
    }

    async fn queue_delivery(&mut self, row: &OutboxRow) -> Result<(), StoreError> {
        crate::outbox::insert_outbox(&mut self.tx, self.store, row).await
    }

    async fn queue_runs_once(&mut self, queue: QueueId, runs: &[RunId], at: Timestamp) -> Result<(), StoreError> {
        for (i, run) in runs.iter().enumerate() {
            sqlx::query(
                "INSERT INTO queue_runs (queue_id, run_id, added_at) SELECT id, ?, ? FROM annotation_queues WHERE id = ? \
                 ON CONFLICT DO NOTHING",
            )
            .bind(run.to_string())
            .bind(runhook_store::queues::added_at(at, i).to_naive_string())
            .bind(queue.to_string())
            .execute(&mut *self.tx)
            .await
            .map_err(db)?;
        }
        Ok(())
    }

    async fn hold_thread_runs(&mut self, rule: RuleId, runs: &[ThreadRun]) -> Result<(), StoreError> {
        crate::threads::hold(&mut self.tx, rule, runs).await
    }

    async fn release_thread_runs(&mut self, rule: RuleId, runs: &[RunId]) -> Result<(), StoreError> {
        crate::threads::release(&mut self.tx, rule, runs).await
    }

    async fn insert_examples_once(&mut self, examples: &[Example]) -> Result<(), StoreError> {
        for e in examples {
            sqlx::query(
                "INSERT INTO examples (id, dataset_id, inputs, outputs, metadata, splits, source_run_id, created_at, \
                 modified_at) SELECT ?, id, ?, ?, ?, ?, ?, ?, ? FROM datasets WHERE id = ? ON CONFLICT DO NOTHING",
            )
            .bind(e.id.to_string())
            .bind(e.inputs.to_string())
            .bind(e.outputs.as_ref().map(ToString::to_string))
            .bind(e.metadata.as_ref().map(ToString::to_string))
            .bind(runhook_store::datasets::splits_column(&e.splits))
            .bind(e.source_run_id.map(|r| r.to_string()))
            .bind(e.created_at.to_naive_string())
            .bind(e.modified_at.to_naive_string())
            .bind(e.dataset_id.to_string())
            .execute(&mut *self.tx)
            .await
            .map_err(db)?;
        }
        Ok(())
    }

    async fn insert_cycle(&mut self, rule: RuleId, c: &CycleSummary) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO rule_cycles (rule_id, window_start, window_end, candidates, actioned, error) \
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(rule.to_string())
        .bind(c.window_start.to_naive_string())
        .bind(c.window_end.to_naive_string())
        .bind(c.candidates)
        .bind(c.actioned)
        .bind(&c.error)
        .execute(&mut *self.tx)
        .await
        .map_err(db)?;
        Ok(())
    }
}
