//! [`AlertStore`] on Postgres: `alerts`, with an evaluation's notifications
//! queued in the outbox (and every replica's worker told) in the same
//! transaction as its state, which commits only over the version read.

use async_trait::async_trait;
use sqlx::postgres::PgRow;

use runhook_core::model::alert::{AlertSpec, AlertState};
use runhook_core::model::{AlertId, Timestamp};
use runhook_core::secrets::Keyring;
use runhook_store::alerts::{state_from, state_json};
use runhook_store::secrets::{open_spec, seal_spec};
use runhook_store::{Alert, AlertStore, OutboxRow, StoreError};

use crate::PgStore;
use crate::error::db;
use crate::rows::{at, get, time};

const COLUMNS: &str = "id, spec, created_at, updated_at, state, version";

fn alert_from_row(keys: &Keyring, row: &PgRow) -> Result<Alert, StoreError> {
    Ok(Alert {
        id: AlertId(get(row, "id")?),
        spec: open_spec(keys, &get::<String>(row, "spec")?)?,
        created_at: time(row, "created_at")?,
        updated_at: time(row, "updated_at")?,
        state: state_from(&get::<String>(row, "state")?)?,
        version: get(row, "version")?,
    })
}

#[async_trait]
impl AlertStore for PgStore {
    async fn create_alert(&self, id: AlertId, spec: &AlertSpec) -> Result<Alert, StoreError> {
        let now = at(Timestamp::now());
        let done =
            sqlx::query("INSERT INTO alerts (id, spec, created_at, updated_at, state) VALUES ($1, $2, $3, $3, $4)")
                .bind(id.0)
                .bind(seal_spec(&self.keys, spec)?)
                .bind(now)
                .bind(state_json(&AlertState::default()))
                .execute(&self.pool)
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
        let done = sqlx::query("UPDATE alerts SET spec = $1, updated_at = $2 WHERE id = $3")
            .bind(seal_spec(&self.keys, spec)?)
            .bind(at(Timestamp::now()))
            .bind(id.0)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::Conflict(format!("alert {id} does not exist")));
        }
        self.get_alert(id).await?.ok_or_else(|| StoreError::Conflict(format!("alert {id} was deleted meanwhile")))
    }

    async fn delete_alert(&self, id: AlertId) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        let done = sqlx::query("DELETE FROM alerts WHERE id = $1").bind(id.0).execute(&mut *tx).await.map_err(db)?;
        crate::outbox::drop_pending(&mut tx, id.0).await?;
        tx.commit().await.map_err(db)?;
        Ok(done.rows_affected() > 0)
    }

    async fn get_alert(&self, id: AlertId) -> Result<Option<Alert>, StoreError> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM alerts WHERE id = $1"))
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        row.map(|r| alert_from_row(&self.keys, &r)).transpose()
    }

    async fn list_alerts(&self) -> Result<Vec<Alert>, StoreError> {
        let rows =
            sqlx::query(&format!("SELECT {COLUMNS} FROM alerts ORDER BY created_at, id")).fetch_all(&self.pool).await;
        rows.map_err(db)?.iter().map(|r| alert_from_row(&self.keys, r)).collect()
    }

    async fn commit_evaluation(
        &self,
        id: AlertId,
        version: i64,
        state: &AlertState,
        outbox: &[OutboxRow],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        let moved = sqlx::query("UPDATE alerts SET state = $1, version = version + 1 WHERE id = $2 AND version = $3")
            .bind(state_json(state))
            .bind(id.0)
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
        if !outbox.is_empty() {
            crate::outbox::notify_queued(&mut tx).await?;
        }
        tx.commit().await.map_err(db)?;
        if !outbox.is_empty() {
            self.bell.ring();
        }
        Ok(())
    }
}
