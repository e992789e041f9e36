//! [`DatasetStore`] on Postgres: the `datasets` and `examples` tables.
//! Example counts are read with the datasets (one correlated count).

use async_trait::async_trait;
use sqlx::postgres::PgRow;
use sqlx::{Postgres, QueryBuilder};

use runhook_core::model::{Dataset, DatasetId, Example, ExampleId, RunId};
use runhook_store::datasets::{splits_column, splits_of};
use runhook_store::{DatasetQuery, DatasetStore, ExampleChanges, ExampleQuery, StoreError};

use crate::PgStore;
use crate::error::db;
use crate::rows::{at, get, json, json_text, time, uuids};

const DATASET_COLUMNS: &str = "d.id, d.name, d.description, d.data_type, d.inputs_schema, d.outputs_schema, \
     d.metadata, d.created_at, d.modified_at, (SELECT COUNT(*) FROM examples e WHERE e.dataset_id = d.id) AS example_count";
const EXAMPLE_COLUMNS: &str =
    "id, dataset_id, inputs, outputs, metadata, splits, source_run_id, created_at, modified_at";

fn dataset_from_row(row: &PgRow) -> Result<Dataset, StoreError> {
    Ok(Dataset {
        id: DatasetId(get(row, "id")?),
        name: get(row, "name")?,
        description: get(row, "description")?,
        data_type: get(row, "data_type")?,
        inputs_schema: json(row, "inputs_schema", "datasets.inputs_schema")?,
        outputs_schema: json(row, "outputs_schema", "datasets.outputs_schema")?,
        metadata: json(row, "metadata", "datasets.metadata")?,
        created_at: time(row, "created_at")?,
        modified_at: time(row, "modified_at")?,
        example_count: u64::try_from(get::<i64>(row, "example_count")?).unwrap_or(0),
    })
}

fn example_from_row(row: &PgRow) -> Result<Example, StoreError> {
    Ok(Example {
        id: ExampleId(get(row, "id")?),
        dataset_id: DatasetId(get(row, "dataset_id")?),
        inputs: json(row, "inputs", "examples.inputs")?
            .ok_or_else(|| StoreError::corrupt("examples.inputs", "null"))?,
        outputs: json(row, "outputs", "examples.outputs")?,
        metadata: json(row, "metadata", "examples.metadata")?,
        splits: splits_of(&get::<String>(row, "splits")?),
        source_run_id: get::<Option<uuid::Uuid>>(row, "source_run_id")?.map(RunId),
        created_at: time(row, "created_at")?,
        modified_at: time(row, "modified_at")?,
    })
}

#[async_trait]
impl DatasetStore for PgStore {
    async fn create_dataset(&self, d: &Dataset) -> Result<(), StoreError> {
        let result = sqlx::query(
            "INSERT INTO datasets (id, name, description, data_type, inputs_schema, outputs_schema, metadata, \
             created_at, modified_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(d.id.0)
        .bind(&d.name)
        .bind(&d.description)
        .bind(&d.data_type)
        .bind(json_text(&d.inputs_schema))
        .bind(json_text(&d.outputs_schema))
        .bind(json_text(&d.metadata))
        .bind(at(d.created_at))
        .bind(at(d.modified_at))
        .execute(&self.pool)
        .await;
        match result {
            Ok(_) => Ok(()),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                Err(StoreError::Conflict(format!("a dataset named {:?} (or with id {}) already exists", d.name, d.id)))
            }
            Err(e) => Err(db(e)),
        }
    }

    async fn get_dataset(&self, id: DatasetId) -> Result<Option<Dataset>, StoreError> {
        let row = sqlx::query(&format!("SELECT {DATASET_COLUMNS} FROM datasets d WHERE d.id = $1"))
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        row.as_ref().map(dataset_from_row).transpose()
    }

    async fn list_datasets(&self, q: &DatasetQuery) -> Result<Vec<Dataset>, StoreError> {
        let mut b: QueryBuilder<Postgres> =
            QueryBuilder::new(format!("SELECT {DATASET_COLUMNS} FROM datasets d WHERE true"));
        if let Some(name) = &q.name {
            b.push(" AND d.name = ").push_bind(name.clone());
        }
        if let Some(part) = &q.name_contains {
            b.push(" AND strpos(lower(d.name), lower(").push_bind(part.clone()).push(")) > 0");
        }
        if !q.ids.is_empty() {
            b.push(" AND d.id = ANY(").push_bind(uuids(&q.ids, |d| d.0)).push(")");
        }
        b.push(" ORDER BY d.created_at DESC, d.id LIMIT ").push_bind(q.limit.max(1) as i64);
        b.push(" OFFSET ").push_bind(q.offset as i64);
        let rows = b.build().fetch_all(&self.pool).await.map_err(db)?;
        rows.iter().map(dataset_from_row).collect()
    }

    async fn delete_dataset(&self, id: DatasetId) -> Result<bool, StoreError> {
        // The examples go with it (ON DELETE CASCADE).
        let done =
            sqlx::query("DELETE FROM datasets WHERE id = $1").bind(id.0).execute(&self.pool).await.map_err(db)?;
        Ok(done.rows_affected() > 0)
    }

    async fn create_examples(&self, examples: &[Example]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        for e in examples {
            let result = sqlx::query(&format!(
                "INSERT INTO examples ({EXAMPLE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
            ))
            .bind(e.id.0)
            .bind(e.dataset_id.0)
            .bind(e.inputs.to_string())
            .bind(json_text(&e.outputs))
            .bind(json_text(&e.metadata))
            .bind(splits_column(&e.splits))
            .bind(e.source_run_id.map(|r| r.0))
            .bind(at(e.created_at))
            .bind(at(e.modified_at))
            .execute(&mut *tx)
            .await;
            match result {
                Ok(_) => {}
                Err(sqlx::Error::Database(d)) if d.is_unique_violation() => {
                    return Err(StoreError::Conflict(format!("an example with id {} already exists", e.id)));
                }
                Err(sqlx::Error::Database(d)) if d.is_foreign_key_violation() => {
                    return Err(StoreError::DatasetNotFound(e.dataset_id));
                }
                Err(err) => return Err(db(err)),
            }
        }
        tx.commit().await.map_err(db)
    }

    async fn get_example(&self, id: ExampleId) -> Result<Option<Example>, StoreError> {
        let row = sqlx::query(&format!("SELECT {EXAMPLE_COLUMNS} FROM examples WHERE id = $1"))
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        row.as_ref().map(example_from_row).transpose()
    }

    async fn list_examples(&self, q: &ExampleQuery) -> Result<Vec<Example>, StoreError> {
        let mut b: QueryBuilder<Postgres> =
            QueryBuilder::new(format!("SELECT {EXAMPLE_COLUMNS} FROM examples WHERE true"));
        if let Some(d) = q.dataset {
            b.push(" AND dataset_id = ").push_bind(d.0);
        }
        if !q.ids.is_empty() {
            b.push(" AND id = ANY(").push_bind(uuids(&q.ids, |e| e.0)).push(")");
        }
        if !q.splits.is_empty() {
            b.push(" AND (false");
            for s in &q.splits {
                b.push(" OR splits LIKE ").push_bind(format!("%,{s},%"));
            }
            b.push(")");
        }
        b.push(" ORDER BY created_at, id LIMIT ").push_bind(q.limit.max(1) as i64);
        b.push(" OFFSET ").push_bind(q.offset as i64);
        let rows = b.build().fetch_all(&self.pool).await.map_err(db)?;
        rows.iter().map(example_from_row).collect()
    }

    async fn update_example(&self, id: ExampleId, c: &ExampleChanges) -> Result<Option<Example>, StoreError> {
        let row = sqlx::query(&format!(
            "UPDATE examples SET inputs = COALESCE($1, inputs), outputs = COALESCE($2, outputs), \
             metadata = COALESCE($3, metadata), splits = COALESCE($4, splits), modified_at = $5 WHERE id = $6 \
             RETURNING {EXAMPLE_COLUMNS}"
        ))
        .bind(json_text(&c.inputs))
        .bind(json_text(&c.outputs))
        .bind(json_text(&c.metadata))
        .bind(c.splits.as_deref().map(splits_column))
        .bind(at(c.at))
        .bind(id.0)
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        row.as_ref().map(example_from_row).transpose()
    }

    async fn delete_example(&self, id: ExampleId) -> Result<bool, StoreError> {
        let done =
            sqlx::query("DELETE FROM examples WHERE id = $1").bind(id.0).execute(&self.pool).await.map_err(db)?;
        Ok(done.rows_affected() > 0)
    }
}
