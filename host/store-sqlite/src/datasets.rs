//! [`DatasetStore`] on SQLite: the `datasets` and `examples` tables.
//! Example counts are read with the datasets (one grouped subquery).

use async_trait::async_trait;
use serde_json::Value;
use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Row, Sqlite};

use runhook_core::model::{Dataset, DatasetId, Example, ExampleId};
use runhook_store::datasets::{splits_column, splits_of};
use runhook_store::{DatasetQuery, DatasetStore, ExampleChanges, ExampleQuery, StoreError};

use crate::SqliteStore;
use crate::error::db;
use crate::rows::{json, opt_id, parse_id, push_in, req_ts, required};

const DATASET_COLUMNS: &str = "d.id, d.name, d.description, d.data_type, d.inputs_schema, d.outputs_schema, \
     d.metadata, d.created_at, d.modified_at, (SELECT COUNT(*) FROM examples e WHERE e.dataset_id = d.id) AS example_count";
const EXAMPLE_COLUMNS: &str =
    "id, dataset_id, inputs, outputs, metadata, splits, source_run_id, created_at, modified_at";

fn dataset_from_row(row: &SqliteRow) -> Result<Dataset, StoreError> {
    Ok(Dataset {
        id: parse_id(&row.try_get::<String, _>("id").map_err(db)?, "datasets.id")?,
        name: row.try_get("name").map_err(db)?,
        description: row.try_get("description").map_err(db)?,
        data_type: row.try_get("data_type").map_err(db)?,
        inputs_schema: json(row.try_get("inputs_schema").map_err(db)?, "datasets.inputs_schema")?,
        outputs_schema: json(row.try_get("outputs_schema").map_err(db)?, "datasets.outputs_schema")?,
        metadata: json(row.try_get("metadata").map_err(db)?, "datasets.metadata")?,
        created_at: req_ts(row.try_get("created_at").map_err(db)?, "datasets.created_at")?,
        modified_at: req_ts(row.try_get("modified_at").map_err(db)?, "datasets.modified_at")?,
        example_count: u64::try_from(row.try_get::<i64, _>("example_count").map_err(db)?).unwrap_or(0),
    })
}

fn example_from_row(row: &SqliteRow) -> Result<Example, StoreError> {
    Ok(Example {
        id: parse_id(&row.try_get::<String, _>("id").map_err(db)?, "examples.id")?,
        dataset_id: parse_id(&row.try_get::<String, _>("dataset_id").map_err(db)?, "examples.dataset_id")?,
        inputs: required(json(row.try_get("inputs").map_err(db)?, "examples.inputs")?, "examples.inputs")?,
        outputs: json(row.try_get("outputs").map_err(db)?, "examples.outputs")?,
        metadata: json(row.try_get("metadata").map_err(db)?, "examples.metadata")?,
        splits: splits_of(&row.try_get::<String, _>("splits").map_err(db)?),
        source_run_id: opt_id(row.try_get("source_run_id").map_err(db)?, "examples.source_run_id")?,
        created_at: req_ts(row.try_get("created_at").map_err(db)?, "examples.created_at")?,
        modified_at: req_ts(row.try_get("modified_at").map_err(db)?, "examples.modified_at")?,
    })
}

fn text(v: &Option<Value>) -> Option<String> {
    v.as_ref().map(Value::to_string)
}

#[async_trait]
impl DatasetStore for SqliteStore {
    async fn create_dataset(&self, d: &Dataset) -> Result<(), StoreError> {
        let result = sqlx::query(
            "INSERT INTO datasets (id, name, description, data_type, inputs_schema, outputs_schema, metadata, \
             created_at, modified_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(d.id.to_string())
        .bind(&d.name)
        .bind(&d.description)
        .bind(&d.data_type)
        .bind(text(&d.inputs_schema))
        .bind(text(&d.outputs_schema))
        .bind(text(&d.metadata))
        .bind(d.created_at.to_naive_string())
        .bind(d.modified_at.to_naive_string())
        .execute(&self.write)
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
        let row = sqlx::query(&format!("SELECT {DATASET_COLUMNS} FROM datasets d WHERE d.id = ?"))
            .bind(id.to_string())
            .fetch_optional(&self.read)
            .await
            .map_err(db)?;
        row.as_ref().map(dataset_from_row).transpose()
    }

    async fn list_datasets(&self, q: &DatasetQuery) -> Result<Vec<Dataset>, StoreError> {
        let mut b: QueryBuilder<Sqlite> =
            QueryBuilder::new(format!("SELECT {DATASET_COLUMNS} FROM datasets d WHERE 1 = 1"));
        if let Some(name) = &q.name {
            b.push(" AND d.name = ").push_bind(name.clone());
        }
        if let Some(part) = &q.name_contains {
            b.push(" AND instr(lower(d.name), lower(").push_bind(part.clone()).push(")) > 0");
        }
        if !q.ids.is_empty() {
            push_in(&mut b, "d.id", q.ids.iter().map(ToString::to_string));
        }
        b.push(" ORDER BY d.created_at DESC, d.id LIMIT ").push_bind(q.limit.max(1) as i64);
        b.push(" OFFSET ").push_bind(q.offset as i64);
        let rows = b.build().fetch_all(&self.read).await.map_err(db)?;
        rows.iter().map(dataset_from_row).collect()
    }

    async fn delete_dataset(&self, id: DatasetId) -> Result<bool, StoreError> {
        let mut tx = self.write.begin().await.map_err(db)?;
        sqlx::query("DELETE FROM examples WHERE dataset_id = ?")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        let done = sqlx::query("DELETE FROM datasets WHERE id = ?")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(done.rows_affected() > 0)
    }

    async fn create_examples(&self, examples: &[Example]) -> Result<(), StoreError> {
        let mut tx = self.write.begin().await.map_err(db)?;
        for e in examples {
            let known: Option<(String,)> = sqlx::query_as("SELECT id FROM datasets WHERE id = ?")
                .bind(e.dataset_id.to_string())
                .fetch_optional(&mut *tx)
                .await
                .map_err(db)?;
            if known.is_none() {
                return Err(StoreError::DatasetNotFound(e.dataset_id));
            }
            let result =
                sqlx::query(&format!("INSERT INTO examples ({EXAMPLE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"))
                    .bind(e.id.to_string())
                    .bind(e.dataset_id.to_string())
                    .bind(e.inputs.to_string())
                    .bind(text(&e.outputs))
                    .bind(text(&e.metadata))
                    .bind(splits_column(&e.splits))
                    .bind(e.source_run_id.map(|r| r.to_string()))
                    .bind(e.created_at.to_naive_string())
                    .bind(e.modified_at.to_naive_string())
                    .execute(&mut *tx)
                    .await;
            match result {
                Ok(_) => {}
                Err(sqlx::Error::Database(d)) if d.is_unique_violation() => {
                    return Err(StoreError::Conflict(format!("an example with id {} already exists", e.id)));
                }
                Err(err) => return Err(db(err)),
            }
        }
        tx.commit().await.map_err(db)
    }

    async fn get_example(&self, id: ExampleId) -> Result<Option<Example>, StoreError> {
        let row = sqlx::query(&format!("SELECT {EXAMPLE_COLUMNS} FROM examples WHERE id = ?"))
            .bind(id.to_string())
            .fetch_optional(&self.read)
            .await
            .map_err(db)?;
        row.as_ref().map(example_from_row).transpose()
    }

    async fn list_examples(&self, q: &ExampleQuery) -> Result<Vec<Example>, StoreError> {
        let mut b: QueryBuilder<Sqlite> =
            QueryBuilder::new(format!("SELECT {EXAMPLE_COLUMNS} FROM examples WHERE 1 = 1"));
        if let Some(d) = q.dataset {
            b.push(" AND dataset_id = ").push_bind(d.to_string());
        }
        if !q.ids.is_empty() {
            push_in(&mut b, "id", q.ids.iter().map(ToString::to_string));
        }
        if !q.splits.is_empty() {
            b.push(" AND (0");
            for s in &q.splits {
                b.push(" OR splits LIKE ").push_bind(format!("%,{s},%"));
            }
            b.push(")");
        }
        b.push(" ORDER BY created_at, id LIMIT ").push_bind(q.limit.max(1) as i64);
        b.push(" OFFSET ").push_bind(q.offset as i64);
        let rows = b.build().fetch_all(&self.read).await.map_err(db)?;
        rows.iter().map(example_from_row).collect()
    }

    async fn update_example(&self, id: ExampleId, c: &ExampleChanges) -> Result<Option<Example>, StoreError> {
        let done = sqlx::query(
            "UPDATE examples SET inputs = COALESCE(?, inputs), outputs = COALESCE(?, outputs), \
             metadata = COALESCE(?, metadata), splits = COALESCE(?, splits), modified_at = ? WHERE id = ?",
        )
        .bind(text(&c.inputs))
        .bind(text(&c.outputs))
        .bind(text(&c.metadata))
        .bind(c.splits.as_deref().map(splits_column))
        .bind(c.at.to_naive_string())
        .bind(id.to_string())
        .execute(&self.write)
        .await
        .map_err(db)?;
        if done.rows_affected() == 0 {
            return Ok(None);
        }
        self.get_example(id).await
    }

    async fn delete_example(&self, id: ExampleId) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM examples WHERE id = ?")
            .bind(id.to_string())
            .execute(&self.write)
            .await
            .map_err(db)?;
        Ok(done.rows_affected() > 0)
    }
}
