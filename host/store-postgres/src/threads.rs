//! Thread rules' held runs on Postgres: the rows a thread rule keeps in
//! `rule_thread_runs` until a thread has been idle long enough (see
//! `runhook_store::rules::ThreadRun`). Held and released inside a cycle's
//! commit (`Tx`), which the rule's lease fences; read by `due_threads`.

use sqlx::{Postgres, Transaction};

use runhook_core::model::{RuleId, RunId, Timestamp};
use runhook_store::{DueThreads, StoreError, ThreadRun};

use crate::PgStore;
use crate::error::db;
use crate::rows::{at, get, time, uuids};

/// The threads of `rule` idle since `idle_before` (see `RuleStore::due_threads`).
pub(crate) async fn due(
    store: &PgStore,
    rule: RuleId,
    idle_before: Timestamp,
    limit: usize,
) -> Result<DueThreads, StoreError> {
    let rows = sqlx::query(
        "SELECT thread_id, MAX(activity) AS latest FROM rule_thread_runs WHERE rule_id = $1 GROUP BY thread_id \
         ORDER BY latest, thread_id LIMIT $2",
    )
    .bind(rule.0)
    .bind(i64::try_from(limit.saturating_add(1)).unwrap_or(i64::MAX))
    .fetch_all(&store.pool)
    .await
    .map_err(db)?;
    let mut groups = Vec::with_capacity(rows.len());
    for row in &rows {
        groups.push((get::<String>(row, "thread_id")?, time(row, "latest")?));
    }
    let due = DueThreads::due_ids(&groups, idle_before, limit);
    let rows = sqlx::query(
        "SELECT run_id, thread_id, activity FROM rule_thread_runs WHERE rule_id = $1 AND thread_id = ANY($2)",
    )
    .bind(rule.0)
    .bind(&due)
    .fetch_all(&store.pool)
    .await
    .map_err(db)?;
    let mut runs = Vec::with_capacity(rows.len());
    for row in &rows {
        runs.push(ThreadRun {
            run_id: RunId(get(row, "run_id")?),
            thread_id: get(row, "thread_id")?,
            activity: time(row, "activity")?,
        });
    }
    Ok(DueThreads::assemble(groups, runs, idle_before, limit))
}

/// Holds `runs` for `rule`; a run held already keeps its later activity.
pub(crate) async fn hold(
    tx: &mut Transaction<'static, Postgres>,
    rule: RuleId,
    runs: &[ThreadRun],
) -> Result<(), StoreError> {
    if runs.is_empty() {
        return Ok(());
    }
    let ids = uuids(runs.iter().map(|r| &r.run_id), |i| i.0);
    let threads: Vec<&str> = runs.iter().map(|r| r.thread_id.as_str()).collect();
    let activities: Vec<_> = runs.iter().map(|r| at(r.activity)).collect();
    sqlx::query(
        "INSERT INTO rule_thread_runs (rule_id, run_id, thread_id, activity) \
         SELECT $1, * FROM UNNEST($2::uuid[], $3::text[], $4::timestamptz[]) \
         ON CONFLICT (rule_id, run_id) DO UPDATE SET activity = GREATEST(rule_thread_runs.activity, excluded.activity)",
    )
    .bind(rule.0)
    .bind(ids)
    .bind(threads)
    .bind(activities)
    .execute(&mut **tx)
    .await
    .map_err(db)?;
    Ok(())
}

/// Lets `runs` of `rule` go.
pub(crate) async fn release(
    tx: &mut Transaction<'static, Postgres>,
    rule: RuleId,
    runs: &[RunId],
) -> Result<(), StoreError> {
    if runs.is_empty() {
        return Ok(());
    }
    sqlx::query("DELETE FROM rule_thread_runs WHERE rule_id = $1 AND run_id = ANY($2)")
        .bind(rule.0)
        .bind(uuids(runs, |i| i.0))
        .execute(&mut **tx)
        .await
        .map_err(db)?;
    Ok(())
}
