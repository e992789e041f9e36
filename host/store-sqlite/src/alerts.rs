//! [`AlertStore`] on SQLite: `alerts`, with an evaluation's notifications
//! queued in the outbox in the same transaction as its state.

use async_trait::async_trait;
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use runhook_core::model::alert::{AlertSpec, AlertState};
use runhook_core::model::{AlertId, Timestamp};
use runhook_core::secrets::Keyring;
use runhook_store::alerts::{state_from, state_json};
use runhook_store::secrets::{open_spec, seal_spec};
use runhook_store::{Alert, AlertStore, OutboxRow, StoreError};

use crate::SqliteStore;
use crate::error::db;
use crate::rows::{parse_id, req_ts};

const COLUMNS: &str = "id, spec, created_at, updated_at, state, version";

fn alert_from_row(keys: &Keyring, row: &SqliteRow) -> Result<Alert, StoreError> {
    Ok(Alert {
        id: parse_id(&row.try_get::<String, _>("id").map_err(db)?, "alerts.id")?,
        spec: open_spec(keys, &row.try_get::<String, _>("spec").map_err(db)?)?,
        created_at: req_ts(row.try_get("created_at").map_err(db)?, "alerts.created_at")?,
        updated_at: req_ts(row.try_get("updated_at").map_err(db)?, "alerts.updated_at")?,
        state: state_from(&row.try_get::<String, _>("state").map_err(db)?)?,
        version: row.try_get("version").map_err(db)?,
    })
}

#[async_trait]
impl AlertStore for SqliteStore {
    async fn create_alert(&self, id: AlertId, spec: &AlertSpec) -> Result<Alert, StoreError> {
        let now = Timestamp::now().to_naive_string();
        let done = sqlx::query("INSERT INTO alerts (id, spec, created_at, updated_at, state) VALUES (?, ?, ?, ?, ?)")
            .bind(id.to_string())
            .bind(seal_spec(&self.keys, spec)?)
            .bind(&now)
            .bind(&now)
            .bind(state_json(&AlertState::default()))
            .execute(&self.write)
            .await;
        match done {
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                return Err(StoreError::Conflict(format!("an alert with id {id} already exists")));
            }
            other => {
                other.map_err(db)?;
            }
        }
        self.get_alert(id).await?.ok_or_else(|| StoreError::Conflict(format!("alert {id} was deleted meanwhile")))
    }

    async fn update_alert(&self, id: AlertId, spec: &AlertSpec) -> Result<Alert, StoreError> {
        let done = sqlx::query("UPDATE alerts SET spec = ?, updated_at = ? WHERE id = ?")
            .bind(seal_spec(&self.keys, spec)?)
            .bind(Timestamp::now().to_naive_string())
            .bind(id.to_string())
            .execute(&self.write)
            .await
            .map_err(db)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::Conflict(format!("alert {id} does not exist")));
        }
        self.get_alert(id).await?.ok_or_else(|| StoreError::Conflict(format!("alert {id} was deleted meanwhile")))
    }

    async fn delete_alert(&self, id: AlertId) -> Result<bool, StoreError> {
        let mut tx = self.write.begin().await.map_err(db)?;
        let done =
            sqlx::query("DELETE FROM alerts WHERE id = ?").bind(id.to_string()).execute(&mut *tx).await.map_err(db)?;
        crate::outbox::drop_pending(&mut tx, &id.to_string()).await?;
        tx.commit().await.map_err(db)?;
        Ok(done.rows_affected() > 0)
    }

    async fn get_alert(&self, id: AlertId) -> Result<Option<Alert>, StoreError> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM alerts WHERE id = ?"))
            .bind(id.to_string())
            .fetch_optional(&self.read)
            .await
            .map_err(db)?;
        row.map(|r| alert_from_row(&self.keys, &r)).transpose()
    }

    async fn list_alerts(&self) -> Result<Vec<Alert>, StoreError> {
        let rows =
            sqlx::query(&format!("SELECT {COLUMNS} FROM alerts ORDER BY created_at, id")).fetch_all(&self.read).await;
        rows.map_err(db)?.iter().map(|r| alert_from_row(&self.keys, r)).collect()
    }

    async fn commit_evaluation(
        &self,
        id: AlertId,
        version: i64,
        state: &AlertState,
        outbox: &[OutboxRow],
    ) -> Result<(), StoreError> {
        let mut tx = self.write.begin().await.map_err(db)?;
        let moved = sqlx::query("UPDATE alerts SET state = ?, version = version + 1 WHERE id = ? AND version = ?")
            .bind(state_json(state))
            .bind(id.to_string())
            .bind(version)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        if moved.rows_affected() == 0 {
            return Err(StoreError::Conflict(format!("alert {id} was evaluated elsewhere meanwhile, or deleted")));
        }
        for row in outbox {
            crate::outbox::insert_outbox(&mut tx, self, row).await?;
        }
        tx.commit().await.map_err(db)?;
        if !outbox.is_empty() {
            self.bell.ring();
        }
        Ok(())
    }
}
