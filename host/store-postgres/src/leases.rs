//! [`LeaseStore`] on Postgres. Every time is the database's `now()`. Taking
//! leases locks the rules it takes and skips those another replica is
//! taking at that moment (`FOR UPDATE SKIP LOCKED`); a rule another replica
//! took meanwhile is re-checked under its lock and left alone.

use std::time::Duration;

use async_trait::async_trait;
use uuid::Uuid;

use runhook_core::model::RuleId;
use runhook_store::{Lease, LeaseStore, StoreError};

use crate::PgStore;
use crate::error::db;

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[async_trait]
impl LeaseStore for PgStore {
    async fn heartbeat(&self, me: &str, ttl: Duration) -> Result<usize, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        sqlx::query(
            "INSERT INTO replicas (id, alive_until, key_ids) VALUES ($1, now() + $2 * interval '1 millisecond', $3) \
             ON CONFLICT (id) DO UPDATE SET alive_until = excluded.alive_until, key_ids = excluded.key_ids",
        )
        .bind(me)
        .bind(millis(ttl))
        .bind(self.keys.ids().join(","))
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        // Replicas dead for a day are forgotten.
        sqlx::query("DELETE FROM replicas WHERE alive_until < now() - interval '1 day'")
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        let alive: i64 = sqlx::query_scalar("SELECT count(*) FROM replicas WHERE alive_until >= now()")
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(usize::try_from(alive).unwrap_or(1))
    }

    async fn balance_leases(&self, me: &str, want: usize, ttl: Duration) -> Result<Vec<Lease>, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        let mut held: Vec<(Uuid, i64)> = sqlx::query_as(
            "UPDATE rules SET lease_until = now() + $2 * interval '1 millisecond' \
             WHERE lease_owner = $1 AND lease_until >= now() RETURNING id, lease_epoch",
        )
        .bind(me)
        .bind(millis(ttl))
        .fetch_all(&mut *tx)
        .await
        .map_err(db)?;
        held.sort_unstable();
        if held.len() > want {
            let surplus: Vec<Uuid> = held.split_off(want).into_iter().map(|(id, _)| id).collect();
            sqlx::query(
                "UPDATE rules SET lease_owner = NULL, lease_until = NULL WHERE id = ANY($1) AND lease_owner = $2",
            )
            .bind(&surplus)
            .bind(me)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        } else if held.len() < want {
            let taken: Vec<(Uuid, i64)> = sqlx::query_as(
                "UPDATE rules SET lease_owner = $1, lease_epoch = lease_epoch + 1, \
                 lease_until = now() + $2 * interval '1 millisecond' \
                 WHERE id IN (SELECT id FROM rules WHERE lease_owner IS NULL OR lease_until < now() \
                 ORDER BY random() LIMIT $3 FOR UPDATE SKIP LOCKED) RETURNING id, lease_epoch",
            )
            .bind(me)
            .bind(millis(ttl))
            .bind(i64::try_from(want - held.len()).unwrap_or(i64::MAX))
            .fetch_all(&mut *tx)
            .await
            .map_err(db)?;
            held.extend(taken);
        }
        tx.commit().await.map_err(db)?;
        Ok(held.into_iter().map(|(id, epoch)| Lease { rule: RuleId(id), owner: me.to_string(), epoch }).collect())
    }

    async fn hold_singleton(&self, name: &str, me: &str, ttl: Duration) -> Result<bool, StoreError> {
        let held: Option<String> = sqlx::query_scalar(
            "INSERT INTO singletons (name, owner, until) VALUES ($1, $2, now() + $3 * interval '1 millisecond') \
             ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, until = excluded.until \
             WHERE singletons.owner = excluded.owner OR singletons.until < now() RETURNING owner",
        )
        .bind(name)
        .bind(me)
        .bind(millis(ttl))
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        Ok(held.is_some())
    }

    async fn leave(&self, me: &str) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        for sql in [
            "UPDATE rules SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = $1",
            "DELETE FROM replicas WHERE id = $1",
            "DELETE FROM singletons WHERE owner = $1",
        ] {
            sqlx::query(sql).bind(me).execute(&mut *tx).await.map_err(db)?;
        }
        tx.commit().await.map_err(db)
    }

    async fn replica_keys(&self) -> Result<Vec<(String, Vec<String>)>, StoreError> {
        let rows: Vec<(String, String)> =
            sqlx::query_as("SELECT id, key_ids FROM replicas WHERE alive_until >= now() ORDER BY id")
                .fetch_all(&self.pool)
                .await
                .map_err(db)?;
        Ok(rows.into_iter().map(|(id, keys)| (id, key_ids(&keys))).collect())
    }
}

fn key_ids(text: &str) -> Vec<String> {
    text.split(',').filter(|s| !s.is_empty()).map(str::to_string).collect()
}
