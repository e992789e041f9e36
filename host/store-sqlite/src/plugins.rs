//! [`PluginStore`] on SQLite: the `plugins` table (bytes as a BLOB) and
//! `rule_plugins`, which rule saves keep (see [`set_rule_plugins`]). One
//! writer: a check and the write after it see the same rows.

use async_trait::async_trait;
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, Sqlite, Transaction};

use runhook_core::model::{PluginDigest, RuleId, RuleSpec, Timestamp};
use runhook_store::plugins::{capabilities_from, capabilities_text, deleted_meanwhile, missing_plugin};
use runhook_store::{PluginRemoval, PluginStore, PluginUpload, StoreError, StoredPlugin};

use crate::SqliteStore;
use crate::error::db;
use crate::rows::{parse_id, req_ts};

const COLUMNS: &str = "digest, name, size, capabilities, created_at";

fn plugin_from_row(row: &SqliteRow, rules: Vec<RuleId>) -> Result<StoredPlugin, StoreError> {
    Ok(StoredPlugin {
        digest: row
            .try_get::<String, _>("digest")
            .map_err(db)?
            .parse()
            .map_err(|e| StoreError::corrupt("plugins.digest", e))?,
        name: row.try_get("name").map_err(db)?,
        size: u64::try_from(row.try_get::<i64, _>("size").map_err(db)?).unwrap_or_default(),
        capabilities: capabilities_from(&row.try_get::<String, _>("capabilities").map_err(db)?),
        created_at: req_ts(row.try_get("created_at").map_err(db)?, "plugins.created_at")?,
        rules,
    })
}

/// Records the uploaded plugins `spec` uses as rule `id`'s, replacing what
/// it used before; a conflict when one is not stored.
pub(crate) async fn set_rule_plugins(
    tx: &mut Transaction<'_, Sqlite>,
    id: RuleId,
    spec: &RuleSpec,
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM rule_plugins WHERE rule_id = ?")
        .bind(id.to_string())
        .execute(&mut **tx)
        .await
        .map_err(db)?;
    for digest in spec.plugins.digests() {
        let stored: Option<i64> = sqlx::query_scalar("SELECT 1 FROM plugins WHERE digest = ?")
            .bind(digest.as_str())
            .fetch_optional(&mut **tx)
            .await
            .map_err(db)?;
        if stored.is_none() {
            return Err(missing_plugin(&digest));
        }
        sqlx::query("INSERT INTO rule_plugins (rule_id, digest) VALUES (?, ?)")
            .bind(id.to_string())
            .bind(digest.as_str())
            .execute(&mut **tx)
            .await
            .map_err(db)?;
    }
    Ok(())
}

impl SqliteStore {
    async fn users(&self, digest: &str) -> Result<Vec<RuleId>, StoreError> {
        let ids: Vec<String> = sqlx::query_scalar("SELECT rule_id FROM rule_plugins WHERE digest = ? ORDER BY rule_id")
            .bind(digest)
            .fetch_all(&self.read)
            .await
            .map_err(db)?;
        ids.iter().map(|id| parse_id(id, "rule_plugins.rule_id")).collect()
    }
}

#[async_trait]
impl PluginStore for SqliteStore {
    async fn put_plugin(&self, upload: &PluginUpload) -> Result<(StoredPlugin, bool), StoreError> {
        let done = sqlx::query(
            "INSERT INTO plugins (digest, name, size, capabilities, bytes, created_at) VALUES (?, ?, ?, ?, ?, ?) \
             ON CONFLICT (digest) DO NOTHING",
        )
        .bind(upload.digest.as_str())
        .bind(&upload.name)
        .bind(i64::try_from(upload.bytes.len()).unwrap_or(i64::MAX))
        .bind(capabilities_text(&upload.capabilities))
        .bind(&upload.bytes)
        .bind(Timestamp::now().to_naive_string())
        .execute(&self.write)
        .await
        .map_err(db)?;
        let stored = self.get_plugin(&upload.digest).await?.ok_or_else(|| deleted_meanwhile(&upload.digest))?;
        Ok((stored, done.rows_affected() > 0))
    }

    async fn get_plugin(&self, digest: &PluginDigest) -> Result<Option<StoredPlugin>, StoreError> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM plugins WHERE digest = ?"))
            .bind(digest.as_str())
            .fetch_optional(&self.read)
            .await
            .map_err(db)?;
        match row {
            Some(row) => Ok(Some(plugin_from_row(&row, self.users(digest.as_str()).await?)?)),
            None => Ok(None),
        }
    }

    async fn plugin_bytes(&self, digest: &PluginDigest) -> Result<Option<Vec<u8>>, StoreError> {
        sqlx::query_scalar("SELECT bytes FROM plugins WHERE digest = ?")
            .bind(digest.as_str())
            .fetch_optional(&self.read)
            .await
            .map_err(db)
    }

    async fn list_plugins(&self) -> Result<Vec<StoredPlugin>, StoreError> {
        let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM plugins ORDER BY created_at, digest"))
            .fetch_all(&self.read)
            .await
            .map_err(db)?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let digest: String = row.try_get("digest").map_err(db)?;
            out.push(plugin_from_row(row, self.users(&digest).await?)?);
        }
        Ok(out)
    }

    async fn delete_plugin(&self, digest: &PluginDigest) -> Result<PluginRemoval, StoreError> {
        let mut tx = self.write.begin().await.map_err(db)?;
        let users: Vec<String> =
            sqlx::query_scalar("SELECT rule_id FROM rule_plugins WHERE digest = ? ORDER BY rule_id")
                .bind(digest.as_str())
                .fetch_all(&mut *tx)
                .await
                .map_err(db)?;
        if !users.is_empty() {
            let ids = users.iter().map(|id| parse_id(id, "rule_plugins.rule_id")).collect::<Result<_, _>>()?;
            return Ok(PluginRemoval::InUse(ids));
        }
        let done = sqlx::query("DELETE FROM plugins WHERE digest = ?")
            .bind(digest.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(if done.rows_affected() > 0 { PluginRemoval::Removed } else { PluginRemoval::NotFound })
    }
}
