//! The statements of a write transaction, behind the store contract's
//! transaction traits: [`IngestTx`] (an ingest's merge), [`CycleTx`] (a
//! cycle's commit) and the [`ChangeTx`] both share. The decisions are
//! `runhook-store`'s; this file says them in Postgres.
//!
//! The change sequence: every run a transaction changes is stamped with
//! the transaction's id (`pg_current_xact_id()`) and a value of the
//! `change_seq` sequence. Sequence values are handed out in call order,
//! not commit order, so the position is the pair, and a reader reads only
//! below the horizon ([`HORIZON`]): every transaction id below the oldest
//! one still running belongs to a transaction that has committed or rolled
//! back, and no later transaction can take one.

use std::collections::BTreeSet;

use sqlx::{Postgres, QueryBuilder, Transaction};

use runhook_core::model::run::InvalidRun;
use runhook_core::model::{ChangeSeq, Example, Feedback, QueueId, RuleId, RunId, RunRecord, SessionId, Timestamp};
use runhook_store::ingest::IngestTx;
use runhook_store::rules::{CycleTx, outcome_json};
use runhook_store::{Attachment, ChangeTx, CycleSummary, Lease, OutboxRow, RuleRunLog, StoreError, ThreadRun};

use crate::PgStore;
use crate::error::db;
use crate::rows::{FEEDBACK_COLUMNS, RUN_COLUMNS, at, json_text, run_from_row, seq, uuids};

/// The oldest transaction id still running anywhere in the cluster: every
/// change stamped below it is committed (or rolled back) and visible.
pub(crate) const HORIZON: &str = "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint";

/// The position just below a horizon: every change with a lower
/// transaction id, none at or above it.
pub(crate) fn below(horizon: i64) -> ChangeSeq {
    seq(horizon - 1, i64::MAX)
}

/// Runs written in one statement: Postgres binds at most 65,535 values.
const RUNS_PER_STATEMENT: usize = 1000;

/// A write transaction.
pub(crate) struct Tx<'s> {
    pub(crate) tx: Transaction<'static, Postgres>,
    pub(crate) store: &'s PgStore,
    /// Projects whose runs this transaction changed: every replica's rules
    /// on them are woken when it commits (see `notify`).
    changed: BTreeSet<SessionId>,
}

impl<'s> Tx<'s> {
    /// Begins a write transaction.
    pub(crate) async fn begin(store: &'s PgStore) -> Result<Self, StoreError> {
        Ok(Self { tx: store.pool.begin().await.map_err(db)?, store, changed: BTreeSet::new() })
    }

    /// Commits it, then wakes the rules of the projects whose runs changed
    /// (here at once, on other replicas through a debounced notification).
    pub(crate) async fn commit(self) -> Result<(), StoreError> {
        self.tx.commit().await.map_err(db)?;
        if !self.changed.is_empty() {
            self.store.runs_changed(self.changed);
        }
        Ok(())
    }

    /// This transaction's id and `n` new sequence values, ascending.
    async fn stamps(&mut self, n: usize) -> Result<(i64, Vec<i64>), StoreError> {
        let row: (i64, Vec<i64>) = sqlx::query_as(
            "SELECT pg_current_xact_id()::text::bigint, \
             ARRAY(SELECT nextval('change_seq') FROM generate_series(1, $1) ORDER BY 1)",
        )
        .bind(n as i64)
        .fetch_one(&mut *self.tx)
        .await
        .map_err(db)?;
        Ok(row)
    }

    /// Inserts `runs`, or (`update`) overwrites the stored rows of runs this
    /// transaction has locked.
    pub(crate) async fn write_many(&mut self, runs: &[&RunRecord], update: bool) -> Result<(), StoreError> {
        for r in runs {
            refuse_nul(r)?;
        }
        for chunk in runs.chunks(RUNS_PER_STATEMENT) {
            let mut b: QueryBuilder<Postgres> = QueryBuilder::new(format!("INSERT INTO runs ({RUN_COLUMNS}) "));
            b.push_values(chunk, |mut s, r| {
                let (xid, n) = r.seq.parts();
                s.push_bind(r.id.0)
                    .push_bind(r.session_id.0)
                    .push_bind(r.trace_id.0)
                    .push_bind(r.parent_run_id.map(|p| p.0))
                    .push_bind(r.dotted_order.clone())
                    .push_bind(r.name.clone())
                    .push_bind(r.run_type.as_str())
                    .push_bind(at(r.start_time))
                    .push_bind(r.end_time.map(at))
                    .push_bind(r.error.clone())
                    .push_bind(json_text(&r.inputs))
                    .push_bind(json_text(&r.outputs))
                    .push_bind(json_text(&r.extra))
                    .push_bind(json_text(&r.events))
                    .push_bind(json_text(&r.serialized))
                    .push_bind(serde_json::to_string(&r.tags).unwrap_or_else(|_| "[]".into()))
                    .push_bind(r.reference_example_id)
                    .push_bind(r.prompt_tokens)
                    .push_bind(r.completion_tokens)
                    .push_bind(r.total_tokens)
                    .push_bind(r.prompt_cost.clone())
                    .push_bind(r.completion_cost.clone())
                    .push_bind(r.total_cost.clone())
                    .push_bind(r.first_token_time.map(at))
                    .push_bind(r.thread_id.clone())
                    .push_bind(xid)
                    .push_bind(n)
                    .push_bind(at(r.inserted_at))
                    .push_bind(at(r.modified_at));
            });
            if update {
                let sets: Vec<String> =
                    RUN_COLUMNS.split(',').map(str::trim).skip(1).map(|c| format!("{c} = excluded.{c}")).collect();
                b.push(format!(" ON CONFLICT (id) DO UPDATE SET {}", sets.join(", ")));
            }
            b.build().execute(&mut *self.tx).await.map_err(db)?;
        }
        Ok(())
    }
}

impl ChangeTx for Tx<'_> {
    async fn insert_feedback(&mut self, f: &Feedback) -> Result<bool, StoreError> {
        let sql = format!(
            "INSERT INTO feedback ({FEEDBACK_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
             ON CONFLICT (id) DO NOTHING"
        );
        let source = serde_json::to_string(&f.feedback_source).unwrap_or_else(|_| r#"{"type":"api"}"#.into());
        let done = sqlx::query(&sql)
            .bind(f.id.0)
            .bind(f.run_id.map(|r| r.0))
            .bind(f.trace_id.map(|r| r.0))
            .bind(f.session_id.map(|s| s.0))
            .bind(&f.key)
            .bind(f.score)
            .bind(json_text(&f.value))
            .bind(&f.comment)
            .bind(json_text(&f.correction))
            .bind(source)
            .bind(json_text(&f.extra))
            .bind(at(f.created_at))
            .bind(at(f.modified_at))
            .execute(&mut *self.tx)
            .await
            .map_err(db)?;
        Ok(done.rows_affected() == 1)
    }

    async fn touch_run(&mut self, run: RunId, now: Timestamp) -> Result<(), StoreError> {
        let project: Option<uuid::Uuid> = sqlx::query_scalar(
            "UPDATE runs SET change_xid = pg_current_xact_id()::text::bigint, seq = nextval('change_seq'), \
             modified_at = $2 WHERE id = $1 RETURNING session_id",
        )
        .bind(run.0)
        .bind(at(now))
        .fetch_optional(&mut *self.tx)
        .await
        .map_err(db)?;
        self.changed.extend(project.map(SessionId));
        Ok(())
    }
}

impl IngestTx for Tx<'_> {
    async fn load_runs(&mut self, ids: &[RunId]) -> Result<Vec<RunRecord>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        // Locked in id order, so two merges of overlapping batches queue
        // rather than deadlock, and neither loses the other's fields.
        let sql = format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = ANY($1) ORDER BY id FOR UPDATE");
        let rows = sqlx::query(&sql).bind(uuids(ids, |i| i.0)).fetch_all(&mut *self.tx).await.map_err(db)?;
        rows.iter().map(run_from_row).collect()
    }

    async fn session_exists(&mut self, id: SessionId) -> Result<bool, StoreError> {
        let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM sessions WHERE id = $1")
            .bind(id.0)
            .fetch_optional(&mut *self.tx)
            .await
            .map_err(db)?;
        Ok(exists.is_some())
    }

    async fn session_named(&mut self, name: &str, now: Timestamp) -> Result<SessionId, StoreError> {
        // Two replicas creating one project: the second insert waits for
        // the first and does nothing; the select then sees the first's.
        sqlx::query("INSERT INTO sessions (id, name, start_time) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING")
            .bind(SessionId::new_v4().0)
            .bind(name)
            .bind(at(now))
            .execute(&mut *self.tx)
            .await
            .map_err(db)?;
        let id: uuid::Uuid = sqlx::query_scalar("SELECT id FROM sessions WHERE name = $1")
            .bind(name)
            .fetch_one(&mut *self.tx)
            .await
            .map_err(db)?;
        Ok(SessionId(id))
    }

    async fn write_runs(&mut self, runs: &mut [(&mut RunRecord, bool)]) -> Result<(), StoreError> {
        if runs.is_empty() {
            return Ok(());
        }
        let (xid, values) = self.stamps(runs.len()).await?;
        for ((run, _), n) in runs.iter_mut().zip(values) {
            run.seq = seq(xid, n);
            self.changed.insert(run.session_id);
        }
        let created: Vec<&RunRecord> = runs.iter().filter(|(_, c)| *c).map(|(r, _)| &**r).collect();
        let changed: Vec<&RunRecord> = runs.iter().filter(|(_, c)| !*c).map(|(r, _)| &**r).collect();
        // A run created meanwhile by another transaction makes this insert
        // fail (a unique violation): the ingest runs again and merges.
        self.write_many(&created, false).await?;
        self.write_many(&changed, true).await
    }

    async fn put_attachment(&mut self, a: &Attachment) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO attachments (run_id, name, mime, data) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (run_id, name) DO UPDATE SET mime = excluded.mime, data = excluded.data",
        )
        .bind(a.run_id.0)
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
        let ((fx, fs), (tx, ts)) = (from.parts(), to.parts());
        // Under read committed, a commit and a takeover of the rule queue on
        // its row; this statement re-checks the lease on the row as the
        // takeover left it, so a former owner never commits.
        let moved = sqlx::query(
            "UPDATE rules SET wm_xid = $1, wm_seq = $2, window_end = $3 WHERE id = $4 AND wm_xid = $5 AND wm_seq = $6 \
             AND ($7::text IS NULL OR (lease_owner = $7 AND lease_epoch = $8))",
        )
        .bind(tx)
        .bind(ts)
        .bind(at(window_end))
        .bind(rule.0)
        .bind(fx)
        .bind(fs)
        .bind(lease.map(|l| l.owner.as_str()))
        .bind(lease.map(|l| l.epoch))
        .execute(&mut *self.tx)
        .await
        .map_err(db)?;
        Ok(moved.rows_affected() > 0)
    }

    async fn insert_logs(&mut self, logs: &[RuleRunLog]) -> Result<(), StoreError> {
        // 13 values a line, within Postgres's 65,535 bound values.
        for chunk in logs.chunks(1000) {
            let mut b: QueryBuilder<Postgres> = QueryBuilder::new(
                "INSERT INTO rule_runs (rule_id, run_id, run_name, run_type, session_id, thread_id, window_start, \
                 window_end, applied_at, webhooks, evaluators, add_to_dataset, add_to_annotation_queue) ",
            );
            b.push_values(chunk, |mut row, l| {
                row.push_bind(l.rule_id.0)
                    .push_bind(l.run_id.0)
                    .push_bind(l.run_name.clone())
                    .push_bind(l.run_type.clone())
                    .push_bind(l.session_id.0)
                    .push_bind(l.thread_id.clone())
                    .push_bind(at(l.window_start))
                    .push_bind(at(l.window_end))
                    .push_bind(at(l.applied_at))
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
                "INSERT INTO queue_runs (queue_id, run_id, added_at) SELECT id, $1, $2 FROM annotation_queues WHERE id = $3 \
                 ON CONFLICT DO NOTHING",
            )
            .bind(run.0)
            .bind(crate::rows::at(runhook_store::queues::added_at(at, i)))
            .bind(queue.0)
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
                 modified_at) SELECT $1, id, $2, $3, $4, $5, $6, $7, $8 FROM datasets WHERE id = $9 ON CONFLICT DO NOTHING",
            )
            .bind(e.id.0)
            .bind(e.inputs.to_string())
            .bind(e.outputs.as_ref().map(ToString::to_string))
            .bind(e.metadata.as_ref().map(ToString::to_string))
            .bind(runhook_store::datasets::splits_column(&e.splits))
            .bind(e.source_run_id.map(|r| r.0))
            .bind(at(e.created_at))
            .bind(at(e.modified_at))
            .bind(e.dataset_id.0)
            .execute(&mut *self.tx)
            .await
            .map_err(db)?;
        }
        Ok(())
    }

    async fn insert_cycle(&mut self, rule: RuleId, c: &CycleSummary) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO rule_cycles (rule_id, window_start, window_end, candidates, actioned, error) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(rule.0)
        .bind(at(c.window_start))
        .bind(at(c.window_end))
        .bind(c.candidates)
        .bind(c.actioned)
        .bind(&c.error)
        .execute(&mut *self.tx)
        .await
        .map_err(db)?;
        Ok(())
    }
}

/// Postgres text cannot hold a NUL character (SQLite's can): a run with one
/// in a text field is refused, naming the field. JSON fields are stored
/// with it escaped, so only the plain text fields are checked.
fn refuse_nul(r: &RunRecord) -> Result<(), StoreError> {
    let fields = [
        ("name", Some(r.name.as_str())),
        ("dotted_order", Some(r.dotted_order.as_str())),
        ("error", r.error.as_deref()),
        ("thread_id", r.thread_id.as_deref()),
        ("prompt_cost", r.prompt_cost.as_deref()),
        ("completion_cost", r.completion_cost.as_deref()),
        ("total_cost", r.total_cost.as_deref()),
    ];
    for (field, value) in fields {
        if value.is_some_and(|v| v.contains('\0')) {
            return Err(InvalidRun::Invalid {
                run: r.id.to_string(),
                field,
                problem: "holds a NUL character, which the database cannot store".into(),
            }
            .into());
        }
    }
    Ok(())
}
