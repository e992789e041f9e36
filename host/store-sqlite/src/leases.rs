//! [`LeaseStore`] on SQLite. One process owns the embedded store, so it
//! holds every lease; the statements are the same as on a shared database
//! so that the rule engine works one way on both, and the conformance
//! suite checks both.

use std::time::Duration;

use async_trait::async_trait;

use runhook_core::model::{RuleId, Timestamp};
use runhook_store::{Lease, LeaseStore, StoreError};

use crate::SqliteStore;
use crate::error::db;
use crate::rows::parse_id;

fn later(ttl: Duration) -> (String, String) {
    let now = Timestamp::now();
    let until = now.as_datetime() + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::MAX);
    (now.to_naive_string(), Timestamp::from_datetime(until).to_naive_string())
}

#[async_trait]
impl LeaseStore for SqliteStore {
    async fn heartbeat(&self, me: &str, ttl: Duration) -> Result<usize, StoreError> {
        let (now, until) = later(ttl);
        let mut tx = self.write.begin().await.map_err(db)?;
        sqlx::query(
            "INSERT INTO replicas (id, alive_until, key_ids) VALUES (?, ?, ?) \
             ON CONFLICT (id) DO UPDATE SET alive_until = excluded.alive_until, key_ids = excluded.key_ids",
        )
        .bind(me)
        .bind(&until)
        .bind(self.keys.ids().join(","))
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        sqlx::query("DELETE FROM replicas WHERE alive_until < ?").bind(&now).execute(&mut *tx).await.map_err(db)?;
        let alive: i64 = sqlx::query_scalar("SELECT count(*) FROM replicas").fetch_one(&mut *tx).await.map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(usize::try_from(alive).unwrap_or(1))
    }

    async fn balance_leases(&self, me: &str, want: usize, ttl: Duration) -> Result<Vec<Lease>, StoreError> {
        let (now, until) = later(ttl);
        let mut tx = self.write.begin().await.map_err(db)?;
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "UPDATE rules SET lease_until = ?1 WHERE lease_owner = ?2 AND lease_until >= ?3 RETURNING id, lease_epoch",
        )
        .bind(&until)
        .bind(me)
        .bind(&now)
        .fetch_all(&mut *tx)
        .await
        .map_err(db)?;
        let mut held = rows;
        held.sort_unstable();
        if held.len() > want {
            for (id, _) in held.split_off(want) {
                sqlx::query("UPDATE rules SET lease_owner = NULL, lease_until = NULL WHERE id = ?")
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .map_err(db)?;
            }
        } else if held.len() < want {
            let taken: Vec<(String, i64)> = sqlx::query_as(
                "UPDATE rules SET lease_owner = ?1, lease_epoch = lease_epoch + 1, lease_until = ?2 \
                 WHERE id IN (SELECT id FROM rules WHERE lease_owner IS NULL OR lease_until < ?3 \
                 ORDER BY random() LIMIT ?4) RETURNING id, lease_epoch",
            )
            .bind(me)
            .bind(&until)
            .bind(&now)
            .bind(i64::try_from(want - held.len()).unwrap_or(i64::MAX))
            .fetch_all(&mut *tx)
            .await
            .map_err(db)?;
            held.extend(taken);
        }
        tx.commit().await.map_err(db)?;
        held.into_iter()
            .map(|(id, epoch)| Ok(Lease { rule: parse_id::<RuleId>(&id, "rules.id")?, owner: me.to_string(), epoch }))
            .collect()
    }

    async fn hold_singleton(&self, name: &str, me: &str, ttl: Duration) -> Result<bool, StoreError> {
        let (now, until) = later(ttl);
        let held: Option<String> = sqlx::query_scalar(
            "INSERT INTO singletons (name, owner, until) VALUES (?1, ?2, ?3) \
             ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, until = excluded.until \
             WHERE singletons.owner = excluded.owner OR singletons.until < ?4 RETURNING owner",
        )
        .bind(name)
        .bind(me)
        .bind(&until)
        .bind(&now)
        .fetch_optional(&self.write)
        .await
        .map_err(db)?;
        Ok(held.is_some())
    }

    async fn leave(&self, me: &str) -> Result<(), StoreError> {
        let mut tx = self.write.begin().await.map_err(db)?;
        for sql in [
            "UPDATE rules SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = ?",
            "DELETE FROM replicas WHERE id = ?",
            "DELETE FROM singletons WHERE owner = ?",
        ] {
            sqlx::query(sql).bind(me).execute(&mut *tx).await.map_err(db)?;
        }
        tx.commit().await.map_err(db)
    }

    async fn replica_keys(&self) -> Result<Vec<(String, Vec<String>)>, StoreError> {
        let now = Timestamp::now().to_naive_string();
        let rows: Vec<(String, String)> =
            sqlx::query_as("SELECT id, key_ids FROM replicas WHERE alive_until >= ? ORDER BY id")
                .bind(now)
                .fetch_all(&self.read)
                .await
                .map_err(db)?;
        let ids = |text: &str| text.split(',').filter(|s| !s.is_empty()).map(str::to_string).collect();
        Ok(rows.into_iter().map(|(id, keys)| (id.clone(), ids(&keys))).collect())
    }
}
