//! [`QueueStore`] on Postgres: `annotation_queues` and `queue_runs`.

use async_trait::async_trait;
use sqlx::postgres::PgRow;
use sqlx::{Postgres, QueryBuilder};

use runhook_core::model::{QueueId, RunId, Timestamp};
use runhook_store::queues::added_at;
use runhook_store::{AnnotationQueue, QueueEntry, QueueQuery, QueueStore, StoreError};

use crate::PgStore;
use crate::error::db;
use crate::rows::{at, get, opt_time, time, uuids};

const QUEUE_COLUMNS: &str = "id, name, description, rubric_instructions, created_at, updated_at";

fn queue_from_row(row: &PgRow) -> Result<AnnotationQueue, StoreError> {
    Ok(AnnotationQueue {
        id: QueueId(get(row, "id")?),
        name: get(row, "name")?,
        description: get(row, "description")?,
        rubric_instructions: get(row, "rubric_instructions")?,
        created_at: time(row, "created_at")?,
        updated_at: time(row, "updated_at")?,
    })
}

fn entry_from_row(row: &PgRow) -> Result<QueueEntry, StoreError> {
    Ok(QueueEntry {
        run_id: RunId(get(row, "run_id")?),
        added_at: time(row, "added_at")?,
        last_reviewed_time: opt_time(row, "last_reviewed_time")?,
        done: get(row, "done")?,
    })
}

#[async_trait]
impl QueueStore for PgStore {
    async fn create_queue(&self, q: &AnnotationQueue) -> Result<(), StoreError> {
        let result =
            sqlx::query(&format!("INSERT INTO annotation_queues ({QUEUE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)"))
                .bind(q.id.0)
                .bind(&q.name)
                .bind(&q.description)
                .bind(&q.rubric_instructions)
                .bind(at(q.created_at))
                .bind(at(q.updated_at))
                .execute(&self.pool)
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
        let row = sqlx::query(&format!("SELECT {QUEUE_COLUMNS} FROM annotation_queues WHERE id = $1"))
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        row.as_ref().map(queue_from_row).transpose()
    }

    async fn list_queues(&self, q: &QueueQuery) -> Result<Vec<AnnotationQueue>, StoreError> {
        let mut b: QueryBuilder<Postgres> =
            QueryBuilder::new(format!("SELECT {QUEUE_COLUMNS} FROM annotation_queues WHERE true"));
        if let Some(name) = &q.name {
            b.push(" AND name = ").push_bind(name.clone());
        }
        if let Some(part) = &q.name_contains {
            b.push(" AND strpos(lower(name), lower(").push_bind(part.clone()).push(")) > 0");
        }
        if !q.ids.is_empty() {
            b.push(" AND id = ANY(").push_bind(uuids(&q.ids, |d| d.0)).push(")");
        }
        b.push(" ORDER BY created_at DESC, id LIMIT ").push_bind(q.limit.max(1) as i64);
        b.push(" OFFSET ").push_bind(q.offset as i64);
        let rows = b.build().fetch_all(&self.pool).await.map_err(db)?;
        rows.iter().map(queue_from_row).collect()
    }

    async fn delete_queue(&self, id: QueueId) -> Result<bool, StoreError> {
        // Its entries go with it (ON DELETE CASCADE).
        let done = sqlx::query("DELETE FROM annotation_queues WHERE id = $1")
            .bind(id.0)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(done.rows_affected() > 0)
    }

    async fn add_to_queue(&self, queue: QueueId, runs: &[RunId], now: Timestamp) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        let known: Option<(uuid::Uuid,)> = sqlx::query_as("SELECT id FROM annotation_queues WHERE id = $1")
            .bind(queue.0)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?;
        if known.is_none() {
            return Err(StoreError::QueueNotFound(queue));
        }
        for (i, run) in runs.iter().enumerate() {
            let exists: Option<(uuid::Uuid,)> = sqlx::query_as("SELECT id FROM runs WHERE id = $1")
                .bind(run.0)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db)?;
            if exists.is_none() {
                return Err(StoreError::RunNotFound(*run));
            }
            sqlx::query(
                "INSERT INTO queue_runs (queue_id, run_id, added_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            )
            .bind(queue.0)
            .bind(run.0)
            .bind(at(added_at(now, i)))
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
            "SELECT run_id, added_at, last_reviewed_time, done FROM queue_runs WHERE queue_id = $1 \
             AND ($2::boolean IS NULL OR done = $2) ORDER BY added_at, run_id LIMIT $3 OFFSET $4",
        )
        .bind(queue.0)
        .bind(done)
        .bind(limit.max(1) as i64)
        .bind(offset as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.iter().map(entry_from_row).collect()
    }

    async fn mark_reviewed(&self, queue: QueueId, run: RunId, done: bool, now: Timestamp) -> Result<bool, StoreError> {
        let changed =
            sqlx::query("UPDATE queue_runs SET done = $1, last_reviewed_time = $2 WHERE queue_id = $3 AND run_id = $4")
                .bind(done)
                .bind(at(now))
                .bind(queue.0)
                .bind(run.0)
                .execute(&self.pool)
                .await
                .map_err(db)?;
        Ok(changed.rows_affected() > 0)
    }

    async fn remove_from_queue(&self, queue: QueueId, run: RunId) -> Result<bool, StoreError> {
        let gone = sqlx::query("DELETE FROM queue_runs WHERE queue_id = $1 AND run_id = $2")
            .bind(queue.0)
            .bind(run.0)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(gone.rows_affected() > 0)
    }
}
