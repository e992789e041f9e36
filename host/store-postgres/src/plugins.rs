//! [`PluginStore`] on Postgres: the `plugins` table (bytes as `bytea`) and
//! `rule_plugins`, which rule saves keep (see [`set_rule_plugins`]). The
//! foreign key from `rule_plugins` to `plugins` settles races between
//! replicas: a rule saved while its plugin is deleted fails on the key
//! (a conflict naming the digest), or the delete does (the plugin is in use).

use async_trait::async_trait;
use sqlx::postgres::PgRow;
use sqlx::{Postgres, Transaction};
use uuid::Uuid;

use runhook_core::model::{PluginDigest, RuleId, RuleSpec, Timestamp};
use runhook_store::plugins::{capabilities_from, capabilities_text, deleted_meanwhile, missing_plugin};
use runhook_store::{PluginRemoval, PluginStore, PluginUpload, StoreError, StoredPlugin};

use crate::PgStore;
use crate::error::{db, foreign_key_violation};
use crate::rows::{at, get, time};

const COLUMNS: &str = "digest, name, size, capabilities, created_at, \
    ARRAY(SELECT rule_id FROM rule_plugins r WHERE r.digest = plugins.digest ORDER BY rule_id) AS rules";

fn plugin_from_row(row: &PgRow) -> Result<StoredPlugin, StoreError> {
    Ok(StoredPlugin {
        digest: get::<String>(row, "digest")?.parse().map_err(|e| StoreError::corrupt("plugins.digest", e))?,
        name: get(row, "name")?,
        size: u64::try_from(get::<i64>(row, "size")?).unwrap_or_default(),
        capabilities: capabilities_from(&get::<String>(row, "capabilities")?),
        created_at: time(row, "created_at")?,
        rules: get::<Vec<Uuid>>(row, "rules")?.into_iter().map(RuleId).collect(),
    })
}

/// Records the uploaded plugins `spec` uses as rule `id`'s, replacing what
/// it used before; a conflict when one is not stored (or is being deleted).
pub(crate) async fn set_rule_plugins(
    tx: &mut Transaction<'_, Postgres>,
    id: RuleId,
    spec: &RuleSpec,
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM rule_plugins WHERE rule_id = $1").bind(id.0).execute(&mut **tx).await.map_err(db)?;
    for digest in spec.plugins.digests() {
        let done = sqlx::query("INSERT INTO rule_plugins (rule_id, digest) VALUES ($1, $2)")
            .bind(id.0)
            .bind(digest.as_str())
            .execute(&mut **tx)
            .await
            .map_err(db);
        match done {
            Err(e) if foreign_key_violation(&e) => return Err(missing_plugin(&digest)),
            Err(e) => return Err(e),
            Ok(_) => {}
        }
    }
    Ok(())
}

/// Stores a plugin unless its digest is stored; whether it was new. Shared
/// by uploads and `migrate-store`'s import (which keeps `created_at`).
pub(crate) async fn insert_plugin<'e>(
    exec: impl sqlx::PgExecutor<'e>,
    digest: &PluginDigest,
    name: &str,
    capabilities: &[String],
    bytes: &[u8],
    created_at: Timestamp,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "INSERT INTO plugins (digest, name, size, capabilities, bytes, created_at) VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (digest) DO NOTHING",
    )
    .bind(digest.as_str())
    .bind(name)
    .bind(i64::try_from(bytes.len()).unwrap_or(i64::MAX))
    .bind(capabilities_text(capabilities))
    .bind(bytes)
    .bind(at(created_at))
    .execute(exec)
    .await
    .map_err(db)?;
    Ok(done.rows_affected() > 0)
}

#[async_trait]
impl PluginStore for PgStore {
    async fn put_plugin(&self, upload: &PluginUpload) -> Result<(StoredPlugin, bool), StoreError> {
        let u = upload;
        let created =
            insert_plugin(&self.pool, &u.digest, &u.name, &u.capabilities, &u.bytes, Timestamp::now()).await?;
        let stored = self.get_plugin(&upload.digest).await?.ok_or_else(|| deleted_meanwhile(&upload.digest))?;
        Ok((stored, created))
    }

    async fn get_plugin(&self, digest: &PluginDigest) -> Result<Option<StoredPlugin>, StoreError> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM plugins WHERE digest = $1"))
            .bind(digest.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        row.as_ref().map(plugin_from_row).transpose()
    }

    async fn plugin_bytes(&self, digest: &PluginDigest) -> Result<Option<Vec<u8>>, StoreError> {
        sqlx::query_scalar("SELECT bytes FROM plugins WHERE digest = $1")
            .bind(digest.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(db)
    }

    async fn list_plugins(&self) -> Result<Vec<StoredPlugin>, StoreError> {
        let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM plugins ORDER BY created_at, digest"))
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        rows.iter().map(plugin_from_row).collect()
    }

    async fn delete_plugin(&self, digest: &PluginDigest) -> Result<PluginRemoval, StoreError> {
        let done = sqlx::query("DELETE FROM plugins WHERE digest = $1").bind(digest.as_str()).execute(&self.pool).await;
        match done.map_err(db) {
            Ok(d) if d.rows_affected() > 0 => Ok(PluginRemoval::Removed),
            Ok(_) => Ok(PluginRemoval::NotFound),
            // A rule uses it (perhaps one saved a moment ago): say which.
            Err(e) if foreign_key_violation(&e) => {
                let users = self.get_plugin(digest).await?.map(|p| p.rules).unwrap_or_default();
                Ok(PluginRemoval::InUse(users))
            }
            Err(e) => Err(e),
        }
    }
}
