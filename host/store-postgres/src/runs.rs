//! [`RunStore`] on Postgres: ingest (the merge is `runhook_store::ingest`;
//! the statements are in [`crate::tx`]) and the reads of runs, feedback,
//! projects and attachments.

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::TryStreamExt;
use sqlx::postgres::PgRow;
use sqlx::{Postgres, QueryBuilder, Row};

use runhook_core::model::{Feedback, FeedbackId, RunId, RunRecord, Session, SessionId, TenantId, Timestamp};
use runhook_store::{
    FeedbackQuery, IngestBatch, IngestSummary, RunCursor, RunQuery, RunStore, SessionQuery, StoreError, TreeNode,
    add_feedback, ingest,
};

use crate::PgStore;
use crate::error::{db, lost_race};
use crate::rows::{
    FEEDBACK_COLUMNS, LEAN_RUN_COLUMNS, RUN_COLUMNS, at, feedback_from_row, get, json_text, run_from_row,
    session_from_row, uuids,
};
use crate::tx::Tx;

/// How many times an ingest that lost a race to a concurrent one (both
/// created one run, or deadlocked) is run again before the error is returned.
const INGEST_TRIES: usize = 5;

#[async_trait]
impl RunStore for PgStore {
    fn tenant_id(&self) -> TenantId {
        self.tenant
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map_err(db)?;
        Ok(())
    }

    async fn ingest(&self, batch: IngestBatch) -> Result<IngestSummary, StoreError> {
        let mut tries = 0;
        loop {
            tries += 1;
            let mut tx = Tx::begin(self).await?;
            let result = match ingest::apply(&mut tx, batch.clone(), Timestamp::now()).await {
                Ok(summary) => tx.commit().await.map(|()| summary),
                Err(e) => Err(e),
            };
            match result {
                Err(e) if tries < INGEST_TRIES && lost_race(&e) => continue,
                other => return other,
            }
        }
    }

    async fn get_run(&self, id: RunId) -> Result<Option<RunRecord>, StoreError> {
        let sql = format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = $1");
        let row = sqlx::query(&sql).bind(id.0).fetch_optional(&self.pool).await.map_err(db)?;
        row.as_ref().map(run_from_row).transpose()
    }

    async fn query_runs(&self, q: &RunQuery) -> Result<(Vec<RunRecord>, Option<RunCursor>), StoreError> {
        let columns = if q.lean { LEAN_RUN_COLUMNS } else { RUN_COLUMNS };
        let mut b: QueryBuilder<Postgres> = QueryBuilder::new(format!("SELECT {columns} FROM runs WHERE true"));
        if !q.ids.is_empty() {
            b.push(" AND id = ANY(").push_bind(uuids(&q.ids, |i| i.0)).push(")");
        } else {
            if !q.sessions.is_empty() {
                b.push(" AND session_id = ANY(").push_bind(uuids(&q.sessions, |i| i.0)).push(")");
            }
            if let Some(trace) = q.trace {
                b.push(" AND trace_id = ").push_bind(trace.0);
            }
            if let Some(parent) = q.parent_run {
                b.push(" AND parent_run_id = ").push_bind(parent.0);
            }
            if let Some(t) = q.run_type {
                b.push(" AND run_type = ").push_bind(t.as_str());
            }
            match q.is_root {
                Some(true) => drop(b.push(" AND parent_run_id IS NULL")),
                Some(false) => drop(b.push(" AND parent_run_id IS NOT NULL")),
                None => {}
            }
            match q.error {
                Some(true) => drop(b.push(" AND error IS NOT NULL")),
                Some(false) => drop(b.push(" AND error IS NULL")),
                None => {}
            }
            if let Some(start) = q.start_time {
                b.push(" AND start_time >= ").push_bind(at(start));
            }
            if !q.reference_examples.is_empty() {
                b.push(" AND reference_example_id = ANY(").push_bind(q.reference_examples.clone()).push(")");
            }
        }
        if let Some(c) = &q.cursor {
            b.push(" AND (start_time, id) < (").push_bind(at(c.start_time));
            b.push(", ").push_bind(c.id.0).push(")");
        }
        let limit = q.limit.max(1);
        b.push(" ORDER BY start_time DESC, id DESC LIMIT ").push_bind((limit + 1) as i64);
        // Row by row, so that a page ended by its byte budget never holds
        // the rows after it.
        let query = b.build();
        let mut rows = query.fetch(&self.pool);
        let (mut runs, mut bytes, mut more) = (Vec::new(), 0usize, false);
        while let Some(row) = rows.try_next().await.map_err(db)? {
            if runs.len() == limit || q.max_bytes.is_some_and(|max| bytes > max) {
                more = true;
                break;
            }
            bytes += large_field_bytes(&row);
            runs.push(run_from_row(&row)?);
        }
        let next = if more { runs.last().map(|r| RunCursor { start_time: r.start_time, id: r.id }) } else { None };
        Ok((runs, next))
    }

    async fn runs_in_traces(&self, traces: &[RunId]) -> Result<Vec<RunRecord>, StoreError> {
        self.runs_where("trace_id", traces).await
    }

    async fn runs_by_ids(&self, ids: &[RunId]) -> Result<Vec<RunRecord>, StoreError> {
        self.runs_where("id", ids).await
    }

    async fn trace_nodes(&self, traces: &[RunId]) -> Result<Vec<TreeNode>, StoreError> {
        let rows = sqlx::query("SELECT id, parent_run_id, dotted_order FROM runs WHERE trace_id = ANY($1)")
            .bind(uuids(traces, |i| i.0))
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        rows.iter()
            .map(|row| {
                Ok(TreeNode {
                    id: RunId(get(row, "id")?),
                    parent_run_id: get::<Option<uuid::Uuid>>(row, "parent_run_id")?.map(RunId),
                    dotted_order: get(row, "dotted_order")?,
                })
            })
            .collect()
    }

    async fn create_feedback(&self, feedback: Feedback) -> Result<Feedback, StoreError> {
        let mut tx = Tx::begin(self).await?;
        if let Some(run) = feedback.run_id {
            let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM runs WHERE id = $1")
                .bind(run.0)
                .fetch_optional(&mut *tx.tx)
                .await
                .map_err(db)?;
            if exists.is_none() {
                return Err(StoreError::RunNotFound(run));
            }
        }
        add_feedback(&mut tx, &feedback, Timestamp::now()).await?;
        let sql = format!("SELECT {FEEDBACK_COLUMNS} FROM feedback WHERE id = $1");
        let row = sqlx::query(&sql).bind(feedback.id.0).fetch_one(&mut *tx.tx).await.map_err(db)?;
        let stored = feedback_from_row(&row)?;
        tx.commit().await?;
        Ok(stored)
    }

    async fn list_feedback(&self, q: &FeedbackQuery) -> Result<Vec<Feedback>, StoreError> {
        let mut b: QueryBuilder<Postgres> =
            QueryBuilder::new(format!("SELECT {FEEDBACK_COLUMNS} FROM feedback WHERE true"));
        if !q.runs.is_empty() {
            b.push(" AND run_id = ANY(").push_bind(uuids(&q.runs, |i| i.0)).push(")");
        }
        if !q.keys.is_empty() {
            b.push(" AND key = ANY(").push_bind(q.keys.clone()).push(")");
        }
        if !q.sessions.is_empty() {
            b.push(" AND session_id = ANY(").push_bind(uuids(&q.sessions, |i| i.0)).push(")");
        }
        if !q.sources.is_empty() {
            b.push(" AND (feedback_source::jsonb ->> 'type') = ANY(").push_bind(q.sources.clone()).push(")");
        }
        b.push(" ORDER BY created_at, id LIMIT ").push_bind(q.limit.max(1) as i64);
        b.push(" OFFSET ").push_bind(q.offset as i64);
        let rows = b.build().fetch_all(&self.pool).await.map_err(db)?;
        rows.iter().map(feedback_from_row).collect()
    }

    async fn feedback_for_runs(&self, runs: &[RunId]) -> Result<Vec<Feedback>, StoreError> {
        let sql = format!("SELECT {FEEDBACK_COLUMNS} FROM feedback WHERE run_id = ANY($1) ORDER BY created_at, id");
        let rows = sqlx::query(&sql).bind(uuids(runs, |i| i.0)).fetch_all(&self.pool).await.map_err(db)?;
        rows.iter().map(feedback_from_row).collect()
    }

    async fn get_feedback(&self, id: FeedbackId) -> Result<Option<Feedback>, StoreError> {
        let sql = format!("SELECT {FEEDBACK_COLUMNS} FROM feedback WHERE id = $1");
        let row = sqlx::query(&sql).bind(id.0).fetch_optional(&self.pool).await.map_err(db)?;
        row.as_ref().map(feedback_from_row).transpose()
    }

    async fn get_session(&self, id: SessionId) -> Result<Option<Session>, StoreError> {
        let row = sqlx::query("SELECT id, name, description, extra, start_time FROM sessions WHERE id = $1")
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        row.as_ref().map(session_from_row).transpose()
    }

    async fn list_sessions(&self, q: &SessionQuery) -> Result<Vec<Session>, StoreError> {
        let mut b: QueryBuilder<Postgres> =
            QueryBuilder::new("SELECT id, name, description, extra, start_time FROM sessions WHERE true");
        if let Some(name) = &q.name {
            b.push(" AND name = ").push_bind(name.clone());
        }
        if let Some(part) = &q.name_contains {
            b.push(" AND strpos(lower(name), lower(").push_bind(part.clone()).push(")) > 0");
        }
        if !q.ids.is_empty() {
            b.push(" AND id = ANY(").push_bind(uuids(&q.ids, |i| i.0)).push(")");
        }
        b.push(" ORDER BY start_time DESC, id LIMIT ").push_bind(q.limit.max(1) as i64);
        b.push(" OFFSET ").push_bind(q.offset as i64);
        let rows = b.build().fetch_all(&self.pool).await.map_err(db)?;
        rows.iter().map(session_from_row).collect()
    }

    async fn create_session(&self, s: Session) -> Result<Session, StoreError> {
        let result =
            sqlx::query("INSERT INTO sessions (id, name, description, extra, start_time) VALUES ($1, $2, $3, $4, $5)")
                .bind(s.id.0)
                .bind(&s.name)
                .bind(&s.description)
                .bind(json_text(&s.extra))
                .bind(at(s.start_time))
                .execute(&self.pool)
                .await;
        match result {
            Ok(_) => Ok(s),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                Err(StoreError::Conflict(format!("a project named {:?} (or with id {}) already exists", s.name, s.id)))
            }
            Err(e) => Err(db(e)),
        }
    }

    async fn get_attachment(&self, run: RunId, name: &str) -> Result<Option<(String, Bytes)>, StoreError> {
        let row = sqlx::query("SELECT mime, data FROM attachments WHERE run_id = $1 AND name = $2")
            .bind(run.0)
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        row.map(|row| Ok((get(&row, "mime")?, Bytes::from(get::<Vec<u8>>(&row, "data")?)))).transpose()
    }

    async fn list_attachments(&self, run: RunId) -> Result<Vec<(String, String)>, StoreError> {
        let rows = sqlx::query("SELECT name, mime FROM attachments WHERE run_id = $1 ORDER BY name")
            .bind(run.0)
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        rows.iter().map(|r| Ok((get(r, "name")?, get(r, "mime")?))).collect()
    }
}

impl PgStore {
    /// Runs whose `column` is one of `ids`.
    async fn runs_where(&self, column: &str, ids: &[RunId]) -> Result<Vec<RunRecord>, StoreError> {
        let sql = format!("SELECT {RUN_COLUMNS} FROM runs WHERE {column} = ANY($1)");
        let rows = sqlx::query(&sql).bind(uuids(ids, |i| i.0)).fetch_all(&self.pool).await.map_err(db)?;
        rows.iter().map(run_from_row).collect()
    }
}

/// The stored text of a run row's large fields, in bytes.
fn large_field_bytes(row: &PgRow) -> usize {
    ["inputs", "outputs", "events", "serialized", "extra"]
        .iter()
        .map(|c| row.try_get::<Option<&str>, _>(*c).ok().flatten().map_or(0, str::len))
        .sum()
}
