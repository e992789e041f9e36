//! [`RunStore`] on SQLite: ingest (the merge is `runhook_store::ingest`;
//! the statements are in [`crate::tx`]), and the reads of runs, feedback,
//! projects and attachments, all on the read pool.

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::TryStreamExt;
use serde_json::Value;
use sqlx::{QueryBuilder, Row, Sqlite};

use runhook_core::model::{Feedback, FeedbackId, RunId, RunRecord, Session, SessionId, TenantId, Timestamp};
use runhook_store::{
    FeedbackQuery, IngestBatch, IngestSummary, RunCursor, RunQuery, RunStore, SessionQuery, StoreError, TreeNode,
    add_feedback, ingest,
};

use crate::SqliteStore;
use crate::error::db;
use crate::rows::{
    CHUNK, FEEDBACK_COLUMNS, LEAN_RUN_COLUMNS, RUN_COLUMNS, feedback_from_row, opt_id, parse_id, push_in, run_from_row,
    session_from_row,
};
use crate::tx::Tx;

#[async_trait]
impl RunStore for SqliteStore {
    fn tenant_id(&self) -> TenantId {
        self.tenant
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.read).await.map_err(db)?;
        Ok(())
    }

    async fn ingest(&self, batch: IngestBatch) -> Result<IngestSummary, StoreError> {
        let mut tx = Tx::begin(self).await?;
        let summary = ingest::apply(&mut tx, batch, Timestamp::now()).await?;
        tx.commit().await?;
        Ok(summary)
    }

    async fn get_run(&self, id: RunId) -> Result<Option<RunRecord>, StoreError> {
        let sql = format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = ?");
        let row = sqlx::query(&sql).bind(id.to_string()).fetch_optional(&self.read).await.map_err(db)?;
        row.as_ref().map(run_from_row).transpose()
    }

    async fn query_runs(&self, q: &RunQuery) -> Result<(Vec<RunRecord>, Option<RunCursor>), StoreError> {
        let columns = if q.lean { LEAN_RUN_COLUMNS } else { RUN_COLUMNS };
        let mut b: QueryBuilder<Sqlite> = QueryBuilder::new(format!("SELECT {columns} FROM runs WHERE 1 = 1"));
        if !q.ids.is_empty() {
            push_in(&mut b, "id", q.ids.iter().map(ToString::to_string));
        } else {
            if !q.sessions.is_empty() {
                push_in(&mut b, "session_id", q.sessions.iter().map(ToString::to_string));
            }
            if let Some(trace) = q.trace {
                b.push(" AND trace_id = ").push_bind(trace.to_string());
            }
            if let Some(parent) = q.parent_run {
                b.push(" AND parent_run_id = ").push_bind(parent.to_string());
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
                b.push(" AND start_time >= ").push_bind(start.to_naive_string());
            }
            if !q.reference_examples.is_empty() {
                push_in(&mut b, "reference_example_id", q.reference_examples.iter().map(ToString::to_string));
            }
        }
        if let Some(c) = &q.cursor {
            b.push(" AND (start_time, id) < (").push_bind(c.start_time.to_naive_string());
            b.push(", ").push_bind(c.id.to_string()).push(")");
        }
        let limit = q.limit.max(1);
        b.push(" ORDER BY start_time DESC, id DESC LIMIT ").push_bind((limit + 1) as i64);
        // Row by row, so that a page ended by its byte budget never holds
        // the rows after it.
        let mut rows = b.build().fetch(&self.read);
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
        self.runs_where_in("trace_id", traces).await
    }

    async fn runs_by_ids(&self, ids: &[RunId]) -> Result<Vec<RunRecord>, StoreError> {
        self.runs_where_in("id", ids).await
    }

    async fn trace_nodes(&self, traces: &[RunId]) -> Result<Vec<TreeNode>, StoreError> {
        // Every rule renders its selected runs' trees through here: on the
        // bulk reader (see `direct`).
        let traces: Vec<String> = traces.iter().map(ToString::to_string).collect();
        self.run_reader
            .run(move |conn| {
                rows_in(conn, "SELECT id, parent_run_id, dotted_order FROM runs WHERE trace_id", &traces, |row| {
                    Ok(TreeNode {
                        id: parse_id(&row.get::<_, String>(0).map_err(db)?, "runs.id")?,
                        parent_run_id: opt_id(row.get(1).map_err(db)?, "runs.parent_run_id")?,
                        dotted_order: row.get(2).map_err(db)?,
                    })
                })
            })
            .await
    }

    async fn create_feedback(&self, feedback: Feedback) -> Result<Feedback, StoreError> {
        let mut tx = Tx::begin(self).await?;
        if let Some(run) = feedback.run_id {
            let exists: Option<i64> = sqlx::query_scalar("SELECT 1 FROM runs WHERE id = ?")
                .bind(run.to_string())
                .fetch_optional(&mut *tx.tx)
                .await
                .map_err(db)?;
            if exists.is_none() {
                return Err(StoreError::RunNotFound(run));
            }
        }
        add_feedback(&mut tx, &feedback, Timestamp::now()).await?;
        let sql = format!("SELECT {FEEDBACK_COLUMNS} FROM feedback WHERE id = ?");
        let row = sqlx::query(&sql).bind(feedback.id.to_string()).fetch_one(&mut *tx.tx).await.map_err(db)?;
        let stored = feedback_from_row(&row)?;
        tx.commit().await?;
        Ok(stored)
    }

    async fn list_feedback(&self, q: &FeedbackQuery) -> Result<Vec<Feedback>, StoreError> {
        let mut b: QueryBuilder<Sqlite> =
            QueryBuilder::new(format!("SELECT {FEEDBACK_COLUMNS} FROM feedback WHERE 1 = 1"));
        if !q.runs.is_empty() {
            push_in(&mut b, "run_id", q.runs.iter().map(ToString::to_string));
        }
        if !q.keys.is_empty() {
            push_in(&mut b, "key", q.keys.iter().cloned());
        }
        if !q.sessions.is_empty() {
            push_in(&mut b, "session_id", q.sessions.iter().map(ToString::to_string));
        }
        if !q.sources.is_empty() {
            push_in(&mut b, "json_extract(feedback_source, '$.type')", q.sources.iter().cloned());
        }
        b.push(" ORDER BY created_at, id LIMIT ").push_bind(q.limit.max(1) as i64);
        b.push(" OFFSET ").push_bind(q.offset as i64);
        let rows = b.build().fetch_all(&self.read).await.map_err(db)?;
        rows.iter().map(feedback_from_row).collect()
    }

    async fn feedback_for_runs(&self, runs: &[RunId]) -> Result<Vec<Feedback>, StoreError> {
        let mut out = Vec::new();
        for chunk in runs.chunks(CHUNK) {
            let mut b: QueryBuilder<Sqlite> =
                QueryBuilder::new(format!("SELECT {FEEDBACK_COLUMNS} FROM feedback WHERE 1 = 1"));
            push_in(&mut b, "run_id", chunk.iter().map(ToString::to_string));
            b.push(" ORDER BY created_at, id");
            for row in b.build().fetch_all(&self.read).await.map_err(db)? {
                out.push(feedback_from_row(&row)?);
            }
        }
        Ok(out)
    }

    async fn get_feedback(&self, id: FeedbackId) -> Result<Option<Feedback>, StoreError> {
        let sql = format!("SELECT {FEEDBACK_COLUMNS} FROM feedback WHERE id = ?");
        let row = sqlx::query(&sql).bind(id.to_string()).fetch_optional(&self.read).await.map_err(db)?;
        row.as_ref().map(feedback_from_row).transpose()
    }

    async fn get_session(&self, id: SessionId) -> Result<Option<Session>, StoreError> {
        let row = sqlx::query("SELECT id, name, description, extra, start_time FROM sessions WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&self.read)
            .await
            .map_err(db)?;
        row.as_ref().map(session_from_row).transpose()
    }

    async fn list_sessions(&self, q: &SessionQuery) -> Result<Vec<Session>, StoreError> {
        let mut b: QueryBuilder<Sqlite> =
            QueryBuilder::new("SELECT id, name, description, extra, start_time FROM sessions WHERE 1 = 1");
        if let Some(name) = &q.name {
            b.push(" AND name = ").push_bind(name.clone());
        }
        if let Some(part) = &q.name_contains {
            b.push(" AND instr(lower(name), lower(").push_bind(part.clone()).push(")) > 0");
        }
        if !q.ids.is_empty() {
            push_in(&mut b, "id", q.ids.iter().map(ToString::to_string));
        }
        b.push(" ORDER BY start_time DESC, id LIMIT ").push_bind(q.limit.max(1) as i64);
        b.push(" OFFSET ").push_bind(q.offset as i64);
        let rows = b.build().fetch_all(&self.read).await.map_err(db)?;
        rows.iter().map(session_from_row).collect()
    }

    async fn create_session(&self, s: Session) -> Result<Session, StoreError> {
        let result =
            sqlx::query("INSERT INTO sessions (id, name, description, extra, start_time) VALUES (?, ?, ?, ?, ?)")
                .bind(s.id.to_string())
                .bind(&s.name)
                .bind(&s.description)
                .bind(s.extra.as_ref().map(Value::to_string))
                .bind(s.start_time.to_naive_string())
                .execute(&self.write)
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
        let row = sqlx::query("SELECT mime, data FROM attachments WHERE run_id = ? AND name = ?")
            .bind(run.to_string())
            .bind(name)
            .fetch_optional(&self.read)
            .await
            .map_err(db)?;
        Ok(match row {
            Some(row) => {
                Some((row.try_get("mime").map_err(db)?, Bytes::from(row.try_get::<Vec<u8>, _>("data").map_err(db)?)))
            }
            None => None,
        })
    }

    async fn list_attachments(&self, run: RunId) -> Result<Vec<(String, String)>, StoreError> {
        let rows = sqlx::query("SELECT name, mime FROM attachments WHERE run_id = ? ORDER BY name")
            .bind(run.to_string())
            .fetch_all(&self.read)
            .await
            .map_err(db)?;
        rows.iter().map(|r| Ok((r.try_get("name").map_err(db)?, r.try_get("mime").map_err(db)?))).collect()
    }
}

impl SqliteStore {
    /// Runs whose `column` is one of `ids`, read on the rule engine's own
    /// connection (see `direct`): rules render every run they select
    /// through here.
    async fn runs_where_in(&self, column: &'static str, ids: &[RunId]) -> Result<Vec<RunRecord>, StoreError> {
        let ids: Vec<String> = ids.iter().map(ToString::to_string).collect();
        let select = format!("SELECT {RUN_COLUMNS} FROM runs WHERE {column}");
        self.run_reader.run(move |conn| rows_in(conn, &select, &ids, |row| run_from_row(row))).await
    }
}

/// The rows of `select` (a query ending in the column to match) with that
/// column in `values`, a chunk of values per statement, each row decoded.
fn rows_in<T>(
    conn: &rusqlite::Connection,
    select: &str,
    values: &[String],
    decode: impl Fn(&rusqlite::Row<'_>) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    let mut out = Vec::with_capacity(values.len());
    for chunk in values.chunks(CHUNK) {
        let marks = vec!["?"; chunk.len()].join(", ");
        let mut statement = conn.prepare_cached(&format!("{select} IN ({marks})")).map_err(db)?;
        let mut rows = statement.query(rusqlite::params_from_iter(chunk)).map_err(db)?;
        while let Some(row) = rows.next().map_err(db)? {
            out.push(decode(row)?);
        }
    }
    Ok(out)
}

/// The stored text of a run row's large fields, in bytes.
fn large_field_bytes(row: &sqlx::sqlite::SqliteRow) -> usize {
    ["inputs", "outputs", "events", "serialized", "extra"]
        .iter()
        .map(|c| row.try_get::<Option<&str>, _>(*c).ok().flatten().map_or(0, str::len))
        .sum()
}
