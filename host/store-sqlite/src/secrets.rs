//! [`SecretStore`] on SQLite: re-sealing every stored secret under the
//! current key (rules' specs, outbox targets), in one transaction.

use async_trait::async_trait;
use sqlx::Row;

use runhook_core::model::RuleSpec;
use runhook_core::model::alert::AlertSpec;
use runhook_store::outbox::endpoint_key;
use runhook_store::sealed::{SealedTarget, open_target, stale_values};
use runhook_store::secrets::{Sealable, reseal_spec};
use runhook_store::{SecretStore, StoreError};

use crate::SqliteStore;
use crate::error::db;

#[async_trait]
impl SecretStore for SqliteStore {
    async fn reseal_secrets(&self) -> Result<usize, StoreError> {
        let keys = &self.keys;
        let mut changed = 0;
        let mut tx = self.write.begin().await.map_err(db)?;
        changed += reseal_table::<RuleSpec>(&mut tx, keys, "rules").await?;
        changed += reseal_table::<AlertSpec>(&mut tx, keys, "alerts").await?;
        // Only the sealed columns: every start runs this, and the outbox
        // keeps delivered rows with their bodies.
        let rows =
            sqlx::query("SELECT id, url, headers, signing_secret FROM outbox").fetch_all(&mut *tx).await.map_err(db)?;
        for row in rows {
            let sealed = SealedTarget {
                url: row.try_get("url").map_err(db)?,
                headers: row.try_get("headers").map_err(db)?,
                secret: row.try_get("signing_secret").map_err(db)?,
            };
            let stale = stale_values(keys, &sealed)?;
            if stale == 0 {
                continue;
            }
            changed += stale;
            let target = open_target(keys, &sealed)?;
            let resealed = self.targets.seal(keys, &target);
            let id: String = row.try_get("id").map_err(db)?;
            sqlx::query("UPDATE outbox SET url = ?, headers = ?, signing_secret = ? WHERE id = ?")
                .bind(resealed.url)
                .bind(resealed.headers)
                .bind(resealed.secret)
                .bind(&id)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            // Rows queued before endpoints were kept have none yet.
            sqlx::query("UPDATE delivery_state SET endpoint = ? WHERE id = ?")
                .bind(endpoint_key(&target.url))
                .bind(&id)
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
    tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>,
    keys: &runhook_core::secrets::Keyring,
    table: &str,
) -> Result<usize, StoreError> {
    let mut changed = 0;
    for row in sqlx::query(&format!("SELECT id, spec FROM {table}")).fetch_all(&mut **tx).await.map_err(db)? {
        let text: String = row.try_get("spec").map_err(db)?;
        if let Some((resealed, stale)) = reseal_spec::<S>(keys, &text)? {
            changed += stale;
            sqlx::query(&format!("UPDATE {table} SET spec = ? WHERE id = ?"))
                .bind(resealed)
                .bind(row.try_get::<String, _>("id").map_err(db)?)
                .execute(&mut **tx)
                .await
                .map_err(db)?;
        }
    }
    Ok(changed)
}
