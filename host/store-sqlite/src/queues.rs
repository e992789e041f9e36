//! [`QueueStore`] on SQLite: `annotation_queues` and `queue_runs`.

use async_trait::async_trait;
use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Row, Sqlite};

use runhook_core::model::{QueueId, RunId, Timestamp};
use runhook_store::queues::added_at;
use runhook_store::{AnnotationQueue, QueueEntry, QueueQuery, QueueStore, StoreError};

use crate::SqliteStore;
use crate::error::db;
use crate::rows::{parse_id, push_in, req_ts, ts};

const QUEUE_COLUMNS: &str = "id, name, description, rubric_instructions, created_at, updated_at";

fn queue_from_row(row: &SqliteRow) -> Result<AnnotationQueue, StoreError> {
    Ok(AnnotationQueue {
        id: parse_id(&row.try_get::<String, _>("id").map_err(db)?, "annotation_queues.id")?,
        name: row.try_get("name").map_err(db)?,
        description: row.try_get("description").map_err(db)?,
        rubric_instructions: row.try_get("rubric_instructions").map_err(db)?,
        created_at: req_ts(row.try_get("created_at").map_err(db)?, "annotation_queues.created_at")?,
        updated_at: req_ts(row.try_get("updated_at").map_err(db)?, "annotation_queues.updated_at")?,
    })
}

fn entry_from_row(row: &SqliteRow) -> Result<QueueEntry, StoreError> {
    Ok(QueueEntry {
        run_id: parse_id(&row.try_get::<String, _>("run_id").map_err(db)?, "queue_runs.run_id")?,
        added_at: req_ts(row.try_get("added_at").map_err(db)?, "queue_runs.added_at")?,
        last_reviewed_time: ts(row.try_get("last_reviewed_time").map_err(db)?, "queue_runs.last_reviewed_time")?,
        done: row.try_get::<i64, _>("done").map_err(db)? != 0,
    })
}

#[async_trait]
impl QueueStore for SqliteStore {
    async fn create_queue(&self, q: &AnnotationQueue) -> Result<(), StoreError> {
        let result = sqlx::query(&format!("INSERT INTO annotation_queues ({QUEUE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)"))
            .bind(q.id.to_string())
            .bind(&q.name)
            .bind(&q.description)
            .bind(&q.rubric_instructions)
            .bind(q.created_at.to_naive_string())
            .bind(q.updated_at.to_naive_string())
            .execute(&self.write)
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                Err(StoreError::Conflict(format!("an annotation queue with id {} already exists", q.id)))
            }
            Err(e) => Err(db(e)),
        }
    }

    async fn get_queue(&self, id: QueueId) -> Result<Option<AnnotationQueue>, StoreError> {
        let row = sqlx::query(&format!("SELECT {QUEUE_COLUMNS} FROM annotation_queues WHERE id = ?"))
            .bind(id.to_string())
            .fetch_optional(&self.read)
            .await
            .map_err(db)?;
        row.as_ref().map(queue_from_row).transpose()
    }

    async fn list_queues(&self, q: &QueueQuery) -> Result<Vec<AnnotationQueue>, StoreError> {
        let mut b: QueryBuilder<Sqlite> =
            QueryBuilder::new(format!("SELECT {QUEUE_COLUMNS} FROM annotation_queues WHERE 1 = 1"));
        if let Some(name) = &q.name {
            b.push(" AND name = ").push_bind(name.clone());
        }
        if let Some(part) = &q.name_contains {
            b.push(" AND instr(lower(name), lower(").push_bind(part.clone()).push(")) > 0");
        }
        if !q.ids.is_empty() {
            push_in(&mut b, "id", q.ids.iter().map(ToString::to_string));
        }
        b.push(" ORDER BY created_at DESC, id LIMIT ").push_bind(q.limit.max(1) as i64);
        b.push(" OFFSET ").push_bind(q.offset as i64);
        let rows = b.build().fetch_all(&self.read).await.map_err(db)?;
        rows.iter().map(queue_from_row).collect()
    }

    async fn delete_queue(&self, id: QueueId) -> Result<bool, StoreError> {
        let mut tx = self.write.begin().await.map_err(db)?;
        sqlx::query("DELETE FROM queue_runs WHERE queue_id = ?")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        let done = sqlx::query("DELETE FROM annotation_queues WHERE id = ?")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(done.rows_affected() > 0)
    }

    async fn add_to_queue(&self, queue: QueueId, runs: &[RunId], at: Timestamp) -> Result<(), StoreError> {
        let mut tx = self.write.begin().await.map_err(db)?;
        let known: Option<(String,)> = sqlx::query_as("SELECT id FROM annotation_queues WHERE id = ?")
            .bind(queue.to_string())
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?;
        if known.is_none() {
            return Err(StoreError::QueueNotFound(queue));
        }
        for (i, run) in runs.iter().enumerate() {
            let exists: Option<(String,)> = sqlx::query_as("SELECT id FROM runs WHERE id = ?")
                .bind(run.to_string())
                .fetch_optional(&mut *tx)
                .await
                .map_err(db)?;
            if exists.is_none() {
                return Err(StoreError::RunNotFound(*run));
            }
            sqlx::query("INSERT INTO queue_runs (queue_id, run_id, added_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING")
                .bind(queue.to_string())
                .bind(run.to_string())
                .bind(added_at(at, i).to_naive_string())
                .execute(&mut *tx)
                .await
                .map_err(db)?;
        }
        tx.commit().await.map_err(db)
    }

    async fn queue_entries(
        &self,
        queue: QueueId,
        done: Option<bool>,
        limit: usize,
        offset: usize,
    ) -> Result<Vec<QueueEntry>, StoreError> {
        let rows = sqlx::query(
            "SELECT run_id, added_at, last_reviewed_time, done FROM queue_runs WHERE queue_id = ? \
             AND (? IS NULL OR done = ?) ORDER BY added_at, run_id LIMIT ? OFFSET ?",
        )
        .bind(queue.to_string())
        .bind(done)
        .bind(done)
        .bind(limit.max(1) as i64)
        .bind(offset as i64)
        .fetch_all(&self.read)
        .await
        .map_err(db)?;
        rows.iter().map(entry_from_row).collect()
    }

    async fn mark_reviewed(&self, queue: QueueId, run: RunId, done: bool, at: Timestamp) -> Result<bool, StoreError> {
        let changed =
            sqlx::query("UPDATE queue_runs SET done = ?, last_reviewed_time = ? WHERE queue_id = ? AND run_id = ?")
                .bind(done)
                .bind(at.to_naive_string())
                .bind(queue.to_string())
                .bind(run.to_string())
                .execute(&self.write)
                .await
                .map_err(db)?;
        Ok(changed.rows_affected() > 0)
    }

    async fn remove_from_queue(&self, queue: QueueId, run: RunId) -> Result<bool, StoreError> {
        let gone = sqlx::query("DELETE FROM queue_runs WHERE queue_id = ? AND run_id = ?")
            .bind(queue.to_string())
            .bind(run.to_string())
            .execute(&self.write)
            .await
            .map_err(db)?;
        Ok(gone.rows_affected() > 0)
    }
}
