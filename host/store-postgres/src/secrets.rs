//! [`SecretStore`] on Postgres: re-sealing every stored secret under the
//! current key (rules' specs, outbox targets), in one transaction. Rows
//! are locked as they are read, so two replicas starting together re-seal
//! each value once, one after the other.

use async_trait::async_trait;
use uuid::Uuid;

use runhook_core::model::RuleSpec;
use runhook_core::model::alert::AlertSpec;
use runhook_store::sealed::{SealedTarget, open_target, stale_values};
use runhook_store::secrets::{Sealable, reseal_spec};
use runhook_store::{SecretStore, StoreError};

use crate::PgStore;
use crate::error::db;
use crate::rows::get;

#[async_trait]
impl SecretStore for PgStore {
    async fn reseal_secrets(&self) -> Result<usize, StoreError> {
        let keys = &self.keys;
        let mut changed = 0;
        let mut tx = self.pool.begin().await.map_err(db)?;
        changed += reseal_table::<RuleSpec>(&mut tx, keys, "rules").await?;
        changed += reseal_table::<AlertSpec>(&mut tx, keys, "alerts").await?;
        // Only the sealed columns: the outbox keeps delivered rows with
        // their bodies.
        let rows = sqlx::query("SELECT id, url, headers, signing_secret FROM outbox FOR UPDATE")
            .fetch_all(&mut *tx)
            .await
            .map_err(db)?;
        for row in rows {
            let sealed = SealedTarget {
                url: get(&row, "url")?,
                headers: get(&row, "headers")?,
                secret: get(&row, "signing_secret")?,
            };
            let stale = stale_values(keys, &sealed)?;
            if stale == 0 {
                continue;
            }
            changed += stale;
            let resealed = self.targets.seal(keys, &open_target(keys, &sealed)?);
            sqlx::query("UPDATE outbox SET url = $1, headers = $2, signing_secret = $3 WHERE id = $4")
                .bind(resealed.url)
                .bind(resealed.headers)
                .bind(resealed.secret)
                .bind(get::<Uuid>(&row, "id")?)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
        }
        tx.commit().await.map_err(db)?;
        Ok(changed)
    }
}

/// Re-seals the specs of `table` (`id`, `spec`) not sealed under the
/// current key; how many values changed.
async fn reseal_table<S: Sealable>(
    tx: &mut sqlx::Transaction<'static, sqlx::Postgres>,
    keys: &runhook_core::secrets::Keyring,
    table: &str,
) -> Result<usize, StoreError> {
    let mut changed = 0;
    for row in
        sqlx::query(&format!("SELECT id, spec FROM {table} FOR UPDATE")).fetch_all(&mut **tx).await.map_err(db)?
    {
        if let Some((resealed, stale)) = reseal_spec::<S>(keys, &get::<String>(&row, "spec")?)? {
            changed += stale;
            sqlx::query(&format!("UPDATE {table} SET spec = $1 WHERE id = $2"))
                .bind(resealed)
                .bind(get::<Uuid>(&row, "id")?)
                .execute(&mut **tx)
                .await
                .map_err(db)?;
        }
    }
    Ok(changed)
}
