//! Thread rules' held runs on the embedded store: the rows a thread rule
//! keeps in `rule_thread_runs` until a thread has been idle long enough
//! (see `runhook_store::rules::ThreadRun`). Held and released inside a
//! cycle's commit (`Tx`); read by `due_threads`.

use sqlx::{QueryBuilder, Row, Sqlite, Transaction};

use runhook_core::model::{RuleId, RunId, Timestamp};
use runhook_store::{DueThreads, StoreError, ThreadRun};

use crate::SqliteStore;
use crate::error::db;
use crate::rows::{CHUNK, parse_id, push_in, req_ts};

/// The threads of `rule` idle since `idle_before` (see `RuleStore::due_threads`).
pub(crate) async fn due(
    store: &SqliteStore,
    rule: RuleId,
    idle_before: Timestamp,
    limit: usize,
) -> Result<DueThreads, StoreError> {
    let rows = sqlx::query(
        "SELECT thread_id, MAX(activity) AS latest FROM rule_thread_runs WHERE rule_id = ? GROUP BY thread_id \
         ORDER BY latest, thread_id LIMIT ?",
    )
    .bind(rule.to_string())
    .bind(i64::try_from(limit.saturating_add(1)).unwrap_or(i64::MAX))
    .fetch_all(&store.read)
    .await
    .map_err(db)?;
    let mut groups = Vec::with_capacity(rows.len());
    for row in rows {
        let last = req_ts(row.try_get("latest").map_err(db)?, "rule_thread_runs.activity")?;
        groups.push((row.try_get::<String, _>("thread_id").map_err(db)?, last));
    }
    let mut runs = Vec::new();
    for chunk in DueThreads::due_ids(&groups, idle_before, limit).chunks(CHUNK) {
        let mut b: QueryBuilder<Sqlite> =
            QueryBuilder::new("SELECT run_id, thread_id, activity FROM rule_thread_runs WHERE rule_id = ");
        b.push_bind(rule.to_string());
        push_in(&mut b, "thread_id", chunk.iter().cloned());
        for row in b.build().fetch_all(&store.read).await.map_err(db)? {
            runs.push(ThreadRun {
                run_id: parse_id(&row.try_get::<String, _>("run_id").map_err(db)?, "rule_thread_runs.run_id")?,
                thread_id: row.try_get("thread_id").map_err(db)?,
                activity: req_ts(row.try_get("activity").map_err(db)?, "rule_thread_runs.activity")?,
            });
        }
    }
    Ok(DueThreads::assemble(groups, runs, idle_before, limit))
}

/// Holds `runs` for `rule`; a run held already keeps its later activity.
pub(crate) async fn hold(
    tx: &mut Transaction<'static, Sqlite>,
    rule: RuleId,
    runs: &[ThreadRun],
) -> Result<(), StoreError> {
    // 4 values a row: far below SQLite's bound values.
    for chunk in runs.chunks(200) {
        let mut b: QueryBuilder<Sqlite> =
            QueryBuilder::new("INSERT INTO rule_thread_runs (rule_id, run_id, thread_id, activity) ");
        b.push_values(chunk, |mut row, r| {
            row.push_bind(rule.to_string())
                .push_bind(r.run_id.to_string())
                .push_bind(r.thread_id.clone())
                .push_bind(r.activity.to_naive_string());
        });
        b.push(" ON CONFLICT (rule_id, run_id) DO UPDATE SET activity = MAX(activity, excluded.activity)");
        b.build().execute(&mut **tx).await.map_err(db)?;
    }
    Ok(())
}

/// Lets `runs` of `rule` go.
pub(crate) async fn release(
    tx: &mut Transaction<'static, Sqlite>,
    rule: RuleId,
    runs: &[RunId],
) -> Result<(), StoreError> {
    for chunk in runs.chunks(CHUNK) {
        let mut b: QueryBuilder<Sqlite> = QueryBuilder::new("DELETE FROM rule_thread_runs WHERE rule_id = ");
        b.push_bind(rule.to_string());
        push_in(&mut b, "run_id", chunk.iter().map(ToString::to_string));
        b.build().execute(&mut **tx).await.map_err(db)?;
    }
    Ok(())
}
