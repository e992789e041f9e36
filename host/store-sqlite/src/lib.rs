//! runhook's embedded store: one SQLite file in the data directory.
//!
//! WAL mode lets readers run beside the writer. All writes go through a
//! pool of exactly one connection, so they queue in the process instead of
//! spinning on SQLite's file lock, and each ingest request is one
//! transaction. Reads use a separate small pool. The delivery worker's two
//! hot paths run on rusqlite connections of their own
//! (`direct`); the one that writes does so only while
//! holding the pool's write connection, so there is still one writer.
//!
//! Ids are stored as hyphenated text, JSON fields as text, timestamps in the
//! offset-free UTC form, which sorts in time order.

mod direct;
mod error;
mod outbox;
mod rules;

use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use serde_json::Value;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous};
use sqlx::{QueryBuilder, Row, Sqlite, SqlitePool, Transaction};

use std::collections::HashSet;

use crate::direct::Direct;
pub use crate::direct::DirectCpu;
use crate::error::db;
use runhook_core::model::run::InvalidRun;
use runhook_core::model::{
    DeliveryId, Feedback, FeedbackId, FeedbackSource, Rule, RuleId, RuleSpec, RunId, RunRecord, RunType, RunWrite,
    Session, SessionId, TenantId, Timestamp,
};
use runhook_core::secrets::Keyring;
use runhook_store::sealed::TargetMemo;
use runhook_store::{
    CycleCommit, CycleSummary, DEFAULT_PROJECT, Delivery, DeliveryQuery, DeliveryRecord, DuePage, DueQuery,
    FeedbackQuery, IngestBatch, IngestSummary, OutboxBell, Redelivery, RuleRunLog, RuleState, RunCursor, RunQuery,
    SessionQuery, Store, StoreError, TreeNode,
};

/// SQLite's limit on bound parameters is far above this; chunks keep
/// statements small.
pub(crate) const CHUNK: usize = 400;

pub(crate) const RUN_COLUMNS: &str = "id, session_id, trace_id, parent_run_id, dotted_order, name, run_type, start_time, end_time, \
     error, inputs, outputs, extra, events, serialized, tags, reference_example_id, prompt_tokens, completion_tokens, \
     total_tokens, prompt_cost, completion_cost, total_cost, first_token_time, thread_id, seq, inserted_at, modified_at";

const FEEDBACK_COLUMNS: &str = "id, run_id, trace_id, session_id, key, score, value, comment, correction, \
     feedback_source, extra, created_at, modified_at";

/// The WAL size (pages) at which a writer's commit checkpoints; see `open`.
const CHECKPOINT_PAGES: u32 = 8000;

/// The SQLite store.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pub(crate) write: SqlitePool,
    pub(crate) read: SqlitePool,
    /// The delivery worker's connections (see [`crate::direct`]):
    /// one that reads due deliveries, one that records attempts.
    pub(crate) due_reader: Direct,
    pub(crate) recorder: Direct,
    /// Seals URLs, headers and signing secrets before they are written.
    pub(crate) keys: Keyring,
    /// Sealings of recent delivery targets, both ways (see [`runhook_store::sealed`]).
    pub(crate) targets: Arc<TargetMemo>,
    /// Rung when a commit queues deliveries (see [`OutboxBell`]).
    pub(crate) bell: Arc<OutboxBell>,
    tenant: TenantId,
}

impl SqliteStore {
    /// CPU time the delivery worker's store batches have used so far.
    pub fn delivery_cpu(&self) -> DirectCpu {
        DirectCpu { due_reads: self.due_reader.cpu_used(), records: self.recorder.cpu_used() }
    }

    /// Copies every page of the write-ahead log into the database file, as
    /// the next commit past `CHECKPOINT_PAGES` would, and has the next
    /// writer start the log over (the file is kept: writing over it costs
    /// less than growing a truncated one). `runhook-bench deliveries` runs
    /// it after queueing, so the drain it times never pays for copying the
    /// bodies it queued.
    pub async fn checkpoint(&self) -> Result<(), StoreError> {
        sqlx::query("PRAGMA wal_checkpoint(RESTART)").execute(&self.write).await.map_err(db)?;
        Ok(())
    }

    /// Opens (creating if needed) the store in `data_dir`, and migrates it;
    /// secrets are sealed with `keys`.
    pub async fn open(data_dir: &Path, keys: Keyring) -> Result<Self, StoreError> {
        create_private_dir(data_dir).map_err(|source| StoreError::DataDir { path: data_dir.to_path_buf(), source })?;
        let path = data_dir.join("runhook.db");
        let options = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        // The writer checkpoints the WAL into the database every 8000 pages
        // (32 MiB) rather than SQLite's 1000: delivery state is a small set
        // of pages rewritten again and again, and a rarer checkpoint copies
        // each of them once instead of many times.
        // The database is a local file: checking a connection before each
        // use (a round trip to its thread) finds nothing a query would not.
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .test_before_acquire(false)
            .connect_with(options.clone().pragma("wal_autocheckpoint", CHECKPOINT_PAGES.to_string()))
            .await
            .map_err(db)?;
        sqlx::migrate!("./migrations").run(&write).await.map_err(db)?;
        let read = SqlitePoolOptions::new()
            .max_connections(4)
            .test_before_acquire(false)
            .connect_with(options.read_only(true))
            .await
            .map_err(db)?;
        let tenant = tenant_id(&write).await?;
        let due_reader = Direct::open(&path, true, CHECKPOINT_PAGES)?;
        let recorder = Direct::open(&path, false, CHECKPOINT_PAGES)?;
        Ok(Self { write, read, due_reader, recorder, keys, targets: Arc::default(), bell: Arc::default(), tenant })
    }
}

async fn tenant_id(pool: &SqlitePool) -> Result<TenantId, StoreError> {
    let fresh = TenantId::new_v4().to_string();
    sqlx::query("INSERT INTO meta (key, value) VALUES ('tenant_id', ?) ON CONFLICT (key) DO NOTHING")
        .bind(&fresh)
        .execute(pool)
        .await
        .map_err(db)?;
    let value: String =
        sqlx::query_scalar("SELECT value FROM meta WHERE key = 'tenant_id'").fetch_one(pool).await.map_err(db)?;
    parse_id(&value, "meta.tenant_id")
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
    }
    #[cfg(not(unix))]
    std::fs::create_dir_all(dir)
}

/// How a run in the batch relates to the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    New,
    Changed,
    Unchanged,
}

#[async_trait]
impl Store for SqliteStore {
    fn tenant_id(&self) -> TenantId {
        self.tenant
    }

    async fn ingest(&self, batch: IngestBatch) -> Result<IngestSummary, StoreError> {
        let now = Timestamp::now();
        let mut tx = self.write.begin().await.map_err(db)?;
        let mut ids: Vec<RunId> = batch.posts.iter().chain(&batch.patches).filter_map(|w| w.id).collect();
        ids.sort_unstable();
        ids.dedup();
        let mut runs: HashMap<RunId, (RunRecord, State)> =
            load_runs(&mut tx, &ids).await?.into_iter().map(|r| (r.id, (r, State::Unchanged))).collect();
        let mut sessions = SessionCache::default();

        for w in batch.posts {
            let id = w.id.ok_or(InvalidRun::Missing { run: "(post)".into(), field: "id" })?;
            match runs.get_mut(&id) {
                Some((run, state)) => {
                    if run.fill(w, now)? && *state == State::Unchanged {
                        *state = State::Changed;
                    }
                }
                None => {
                    let session = sessions.resolve(&mut tx, &w, now).await?;
                    runs.insert(id, (RunRecord::create(id, session, w, now)?, State::New));
                }
            }
        }
        for w in batch.patches {
            let id = w.id.ok_or(InvalidRun::Missing { run: "(patch)".into(), field: "id" })?;
            match runs.get_mut(&id) {
                Some((run, state)) => {
                    if run.patch(w, now)? && *state == State::Unchanged {
                        *state = State::Changed;
                    }
                }
                None if batch.patch_creates => {
                    let session = sessions.resolve(&mut tx, &w, now).await?;
                    let run = RunRecord::create(id, session, w, now).map_err(|e| match e {
                        InvalidRun::Missing { .. } => StoreError::RunNotFound(id),
                        other => other.into(),
                    })?;
                    runs.insert(id, (run, State::New));
                }
                None => return Err(StoreError::RunNotFound(id)),
            }
        }

        let mut summary = IngestSummary::default();
        let changed: Vec<&mut (RunRecord, State)> = runs.values_mut().filter(|(_, s)| *s != State::Unchanged).collect();
        let mut seq = next_seq(&mut tx, changed.len()).await?;
        for (run, state) in changed {
            run.seq = seq;
            seq += 1;
            write_run(&mut tx, run, *state == State::New).await?;
            if *state == State::New {
                summary.created += 1;
            } else {
                summary.updated += 1;
            }
        }
        summary.unchanged = runs.values().filter(|(_, s)| *s == State::Unchanged).count();

        for f in &batch.feedback {
            if insert_feedback(&mut tx, f).await? {
                summary.feedback += 1;
                if let Some(run) = f.run_id {
                    bump_run(&mut tx, run, now).await?;
                }
            }
        }
        for a in &batch.attachments {
            sqlx::query(
                "INSERT INTO attachments (run_id, name, mime, data) VALUES (?, ?, ?, ?) \
                         ON CONFLICT (run_id, name) DO UPDATE SET mime = excluded.mime, data = excluded.data",
            )
            .bind(a.run_id.to_string())
            .bind(&a.name)
            .bind(&a.mime)
            .bind(a.data.as_ref())
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        }
        tx.commit().await.map_err(db)?;
        Ok(summary)
    }

    async fn get_run(&self, id: RunId) -> Result<Option<RunRecord>, StoreError> {
        let sql = format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = ?");
        let row = sqlx::query(&sql).bind(id.to_string()).fetch_optional(&self.read).await.map_err(db)?;
        row.as_ref().map(run_from_row).transpose()
    }

    async fn query_runs(&self, q: &RunQuery) -> Result<(Vec<RunRecord>, Option<RunCursor>), StoreError> {
        let mut b: QueryBuilder<Sqlite> = QueryBuilder::new(format!("SELECT {RUN_COLUMNS} FROM runs WHERE 1 = 1"));
        if !q.ids.is_empty() {
            push_in(&mut b, "id", q.ids.iter().map(ToString::to_string));
        } else {
            if !q.sessions.is_empty() {
                push_in(&mut b, "session_id", q.sessions.iter().map(ToString::to_string));
            }
            if let Some(trace) = q.trace {
                b.push(" AND trace_id = ").push_bind(trace.to_string());
            }
            if let Some(parent) = q.parent_run {
                b.push(" AND parent_run_id = ").push_bind(parent.to_string());
            }
            if let Some(t) = q.run_type {
                b.push(" AND run_type = ").push_bind(t.as_str());
            }
            match q.is_root {
                Some(true) => drop(b.push(" AND parent_run_id IS NULL")),
                Some(false) => drop(b.push(" AND parent_run_id IS NOT NULL")),
                None => {}
            }
            match q.error {
                Some(true) => drop(b.push(" AND error IS NOT NULL")),
                Some(false) => drop(b.push(" AND error IS NULL")),
                None => {}
            }
            if let Some(start) = q.start_time {
                b.push(" AND start_time >= ").push_bind(start.to_naive_string());
            }
            if !q.reference_examples.is_empty() {
                push_in(&mut b, "reference_example_id", q.reference_examples.iter().map(ToString::to_string));
            }
        }
        if let Some(c) = &q.cursor {
            b.push(" AND (start_time, id) < (").push_bind(c.start_time.to_naive_string());
            b.push(", ").push_bind(c.id.to_string()).push(")");
        }
        let limit = q.limit.max(1);
        b.push(" ORDER BY start_time DESC, id DESC LIMIT ").push_bind((limit + 1) as i64);
        let rows = b.build().fetch_all(&self.read).await.map_err(db)?;
        let mut runs = rows.iter().map(run_from_row).collect::<Result<Vec<_>, _>>()?;
        let next = if runs.len() > limit {
            runs.truncate(limit);
            runs.last().map(|r| RunCursor { start_time: r.start_time, id: r.id })
        } else {
            None
        };
        Ok((runs, next))
    }

    async fn runs_in_traces(&self, traces: &[RunId]) -> Result<Vec<RunRecord>, StoreError> {
        self.runs_where_in("trace_id", traces).await
    }

    async fn runs_by_ids(&self, ids: &[RunId]) -> Result<Vec<RunRecord>, StoreError> {
        self.runs_where_in("id", ids).await
    }

    async fn trace_nodes(&self, traces: &[RunId]) -> Result<Vec<TreeNode>, StoreError> {
        let mut out = Vec::new();
        for chunk in traces.chunks(CHUNK) {
            let mut b: QueryBuilder<Sqlite> =
                QueryBuilder::new("SELECT id, parent_run_id, dotted_order FROM runs WHERE 1 = 1");
            push_in(&mut b, "trace_id", chunk.iter().map(ToString::to_string));
            for row in b.build().fetch_all(&self.read).await.map_err(db)? {
                out.push(TreeNode {
                    id: parse_id(&row.try_get::<String, _>("id").map_err(db)?, "runs.id")?,
                    parent_run_id: opt_id(row.try_get("parent_run_id").map_err(db)?, "runs.parent_run_id")?,
                    dotted_order: row.try_get("dotted_order").map_err(db)?,
                });
            }
        }
        Ok(out)
    }

    async fn create_feedback(&self, feedback: Feedback) -> Result<Feedback, StoreError> {
        let run = feedback.run_id;
        let mut tx = self.write.begin().await.map_err(db)?;
        if let Some(run) = run {
            let exists: Option<i64> = sqlx::query_scalar("SELECT 1 FROM runs WHERE id = ?")
                .bind(run.to_string())
                .fetch_optional(&mut *tx)
                .await
                .map_err(db)?;
            if exists.is_none() {
                return Err(StoreError::RunNotFound(run));
            }
        }
        if insert_feedback(&mut tx, &feedback).await?
            && let Some(run) = run
        {
            bump_run(&mut tx, run, Timestamp::now()).await?;
        }
        let sql = format!("SELECT {FEEDBACK_COLUMNS} FROM feedback WHERE id = ?");
        let row = sqlx::query(&sql).bind(feedback.id.to_string()).fetch_one(&mut *tx).await.map_err(db)?;
        let stored = feedback_from_row(&row)?;
        tx.commit().await.map_err(db)?;
        Ok(stored)
    }

    async fn list_feedback(&self, q: &FeedbackQuery) -> Result<Vec<Feedback>, StoreError> {
        let mut b: QueryBuilder<Sqlite> =
            QueryBuilder::new(format!("SELECT {FEEDBACK_COLUMNS} FROM feedback WHERE 1 = 1"));
        if !q.runs.is_empty() {
            push_in(&mut b, "run_id", q.runs.iter().map(ToString::to_string));
        }
        if !q.keys.is_empty() {
            push_in(&mut b, "key", q.keys.iter().cloned());
        }
        if !q.sessions.is_empty() {
            push_in(&mut b, "session_id", q.sessions.iter().map(ToString::to_string));
        }
        if !q.sources.is_empty() {
            push_in(&mut b, "json_extract(feedback_source, '$.type')", q.sources.iter().cloned());
        }
        b.push(" ORDER BY created_at, id LIMIT ").push_bind(q.limit.max(1) as i64);
        b.push(" OFFSET ").push_bind(q.offset as i64);
        let rows = b.build().fetch_all(&self.read).await.map_err(db)?;
        rows.iter().map(feedback_from_row).collect()
    }

    async fn feedback_for_runs(&self, runs: &[RunId]) -> Result<Vec<Feedback>, StoreError> {
        let mut out = Vec::new();
        for chunk in runs.chunks(CHUNK) {
            let mut b: QueryBuilder<Sqlite> =
                QueryBuilder::new(format!("SELECT {FEEDBACK_COLUMNS} FROM feedback WHERE 1 = 1"));
            push_in(&mut b, "run_id", chunk.iter().map(ToString::to_string));
            b.push(" ORDER BY created_at, id");
            for row in b.build().fetch_all(&self.read).await.map_err(db)? {
                out.push(feedback_from_row(&row)?);
            }
        }
        Ok(out)
    }

    async fn get_feedback(&self, id: FeedbackId) -> Result<Option<Feedback>, StoreError> {
        let sql = format!("SELECT {FEEDBACK_COLUMNS} FROM feedback WHERE id = ?");
        let row = sqlx::query(&sql).bind(id.to_string()).fetch_optional(&self.read).await.map_err(db)?;
        row.as_ref().map(feedback_from_row).transpose()
    }

    async fn get_session(&self, id: SessionId) -> Result<Option<Session>, StoreError> {
        let row = sqlx::query("SELECT id, name, description, extra, start_time FROM sessions WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&self.read)
            .await
            .map_err(db)?;
        row.as_ref().map(session_from_row).transpose()
    }

    async fn list_sessions(&self, q: &SessionQuery) -> Result<Vec<Session>, StoreError> {
        let mut b: QueryBuilder<Sqlite> =
            QueryBuilder::new("SELECT id, name, description, extra, start_time FROM sessions WHERE 1 = 1");
        if let Some(name) = &q.name {
            b.push(" AND name = ").push_bind(name.clone());
        }
        if let Some(part) = &q.name_contains {
            b.push(" AND instr(lower(name), lower(").push_bind(part.clone()).push(")) > 0");
        }
        if !q.ids.is_empty() {
            push_in(&mut b, "id", q.ids.iter().map(ToString::to_string));
        }
        b.push(" ORDER BY start_time DESC, id LIMIT ").push_bind(q.limit.max(1) as i64);
        b.push(" OFFSET ").push_bind(q.offset as i64);
        let rows = b.build().fetch_all(&self.read).await.map_err(db)?;
        rows.iter().map(session_from_row).collect()
    }

    async fn create_session(&self, s: Session) -> Result<Session, StoreError> {
        let result =
            sqlx::query("INSERT INTO sessions (id, name, description, extra, start_time) VALUES (?, ?, ?, ?, ?)")
                .bind(s.id.to_string())
                .bind(&s.name)
                .bind(&s.description)
                .bind(s.extra.as_ref().map(Value::to_string))
                .bind(s.start_time.to_naive_string())
                .execute(&self.write)
                .await;
        match result {
            Ok(_) => Ok(s),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                Err(StoreError::Conflict(format!("a project named {:?} (or with id {}) already exists", s.name, s.id)))
            }
            Err(e) => Err(db(e)),
        }
    }

    async fn get_attachment(&self, run: RunId, name: &str) -> Result<Option<(String, Bytes)>, StoreError> {
        let row = sqlx::query("SELECT mime, data FROM attachments WHERE run_id = ? AND name = ?")
            .bind(run.to_string())
            .bind(name)
            .fetch_optional(&self.read)
            .await
            .map_err(db)?;
        Ok(match row {
            Some(row) => {
                Some((row.try_get("mime").map_err(db)?, Bytes::from(row.try_get::<Vec<u8>, _>("data").map_err(db)?)))
            }
            None => None,
        })
    }

    async fn list_attachments(&self, run: RunId) -> Result<Vec<(String, String)>, StoreError> {
        let rows = sqlx::query("SELECT name, mime FROM attachments WHERE run_id = ? ORDER BY name")
            .bind(run.to_string())
            .fetch_all(&self.read)
            .await
            .map_err(db)?;
        rows.iter().map(|r| Ok((r.try_get("name").map_err(db)?, r.try_get("mime").map_err(db)?))).collect()
    }

    async fn change_seq(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT value FROM counters WHERE name = 'change_seq'")
            .fetch_one(&self.read)
            .await
            .map_err(db)?)
    }

    async fn create_rule(&self, id: RuleId, spec: &RuleSpec) -> Result<Rule, StoreError> {
        self.create_rule_impl(id, spec).await
    }

    async fn update_rule(&self, id: RuleId, spec: &RuleSpec) -> Result<Rule, StoreError> {
        self.update_rule_impl(id, spec).await
    }

    async fn delete_rule(&self, id: RuleId) -> Result<bool, StoreError> {
        self.delete_rule_impl(id).await
    }

    async fn get_rule(&self, id: RuleId) -> Result<Option<Rule>, StoreError> {
        self.get_rule_impl(id).await
    }

    async fn list_rules(&self) -> Result<Vec<Rule>, StoreError> {
        self.list_rules_impl().await
    }

    async fn rule_state(&self, id: RuleId) -> Result<Option<RuleState>, StoreError> {
        self.rule_state_impl(id).await
    }

    async fn cycle_candidates(
        &self,
        rule: &Rule,
        after: i64,
        upto: i64,
        limit: usize,
    ) -> Result<Vec<RunRecord>, StoreError> {
        self.cycle_candidates_impl(rule, after, upto, limit).await
    }

    async fn actioned(&self, rule: RuleId, runs: &[RunId]) -> Result<HashSet<RunId>, StoreError> {
        self.actioned_impl(rule, runs).await
    }

    async fn commit_cycle(&self, commit: CycleCommit) -> Result<(), StoreError> {
        self.commit_cycle_impl(commit).await
    }

    async fn rule_logs(&self, rule: RuleId, limit: usize, offset: usize) -> Result<Vec<RuleRunLog>, StoreError> {
        self.rule_logs_impl(rule, limit, offset).await
    }

    async fn rule_cycles(&self, rule: RuleId, limit: usize) -> Result<Vec<CycleSummary>, StoreError> {
        self.rule_cycles_impl(rule, limit).await
    }

    fn outbox_bell(&self) -> &OutboxBell {
        &self.bell
    }

    async fn due_deliveries(&self, query: &DueQuery) -> Result<DuePage, StoreError> {
        self.due_deliveries_impl(query).await
    }

    async fn record_deliveries(&self, batch: &[DeliveryRecord]) -> Result<(), StoreError> {
        self.record_deliveries_impl(batch).await
    }

    async fn list_deliveries(&self, query: &DeliveryQuery) -> Result<Vec<Delivery>, StoreError> {
        self.list_deliveries_impl(query).await
    }

    async fn get_delivery(&self, id: DeliveryId) -> Result<Option<Delivery>, StoreError> {
        self.get_delivery_impl(id).await
    }

    async fn redeliver(&self, id: DeliveryId) -> Result<bool, StoreError> {
        self.redeliver_impl(id).await
    }

    async fn redeliver_matching(&self, which: &Redelivery) -> Result<usize, StoreError> {
        self.redeliver_matching_impl(which).await
    }

    async fn prune_deliveries(&self, before: Timestamp, limit: usize) -> Result<usize, StoreError> {
        self.prune_deliveries_impl(before, limit).await
    }

    async fn reseal_secrets(&self) -> Result<usize, StoreError> {
        self.reseal_secrets_impl().await
    }

    async fn outbox_stats(&self) -> Result<(i64, Option<Timestamp>), StoreError> {
        let row =
            sqlx::query("SELECT count(*) AS n, min(created_at) AS oldest FROM delivery_state WHERE status = 'pending'")
                .fetch_one(&self.read)
                .await
                .map_err(db)?;
        Ok((row.try_get("n").map_err(db)?, ts(row.try_get("oldest").map_err(db)?, "delivery_state.created_at")?))
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.read).await.map_err(db)?;
        Ok(())
    }
}

impl SqliteStore {
    /// Runs whose `column` is one of `ids`, read in chunks.
    async fn runs_where_in(&self, column: &str, ids: &[RunId]) -> Result<Vec<RunRecord>, StoreError> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(CHUNK) {
            let mut b: QueryBuilder<Sqlite> = QueryBuilder::new(format!("SELECT {RUN_COLUMNS} FROM runs WHERE 1 = 1"));
            push_in(&mut b, column, chunk.iter().map(ToString::to_string));
            for row in b.build().fetch_all(&self.read).await.map_err(db)? {
                out.push(run_from_row(&row)?);
            }
        }
        Ok(out)
    }
}

/// Projects resolved within one ingest: by id (must exist) or by name
/// (created on first use, like LangSmith).
#[derive(Default)]
struct SessionCache {
    by_name: HashMap<String, SessionId>,
    known_ids: Vec<SessionId>,
}

impl SessionCache {
    async fn resolve(
        &mut self,
        tx: &mut Transaction<'_, Sqlite>,
        w: &RunWrite,
        now: Timestamp,
    ) -> Result<SessionId, StoreError> {
        if let Some(id) = w.session_id {
            if self.known_ids.contains(&id) {
                return Ok(id);
            }
            let exists: Option<i64> = sqlx::query_scalar("SELECT 1 FROM sessions WHERE id = ?")
                .bind(id.to_string())
                .fetch_optional(&mut **tx)
                .await
                .map_err(db)?;
            if exists.is_none() {
                return Err(StoreError::SessionNotFound(id.to_string()));
            }
            self.known_ids.push(id);
            return Ok(id);
        }
        let name = w.session_name.as_deref().map(str::trim).filter(|n| !n.is_empty()).unwrap_or(DEFAULT_PROJECT);
        if let Some(id) = self.by_name.get(name) {
            return Ok(*id);
        }
        let found: Option<String> = sqlx::query_scalar("SELECT id FROM sessions WHERE name = ?")
            .bind(name)
            .fetch_optional(&mut **tx)
            .await
            .map_err(db)?;
        let id = match found {
            Some(id) => parse_id(&id, "sessions.id")?,
            None => {
                let id = SessionId::new_v4();
                sqlx::query("INSERT INTO sessions (id, name, start_time) VALUES (?, ?, ?)")
                    .bind(id.to_string())
                    .bind(name)
                    .bind(now.to_naive_string())
                    .execute(&mut **tx)
                    .await
                    .map_err(db)?;
                id
            }
        };
        self.by_name.insert(name.to_string(), id);
        Ok(id)
    }
}

/// Reserves `n` consecutive values of the change sequence; returns the first.
pub(crate) async fn next_seq(tx: &mut Transaction<'_, Sqlite>, n: usize) -> Result<i64, StoreError> {
    let last: i64 =
        sqlx::query_scalar("UPDATE counters SET value = value + ? WHERE name = 'change_seq' RETURNING value")
            .bind(n as i64)
            .fetch_one(&mut **tx)
            .await
            .map_err(db)?;
    Ok(last - n as i64 + 1)
}

async fn bump_run(tx: &mut Transaction<'_, Sqlite>, run: RunId, now: Timestamp) -> Result<(), StoreError> {
    let seq = next_seq(tx, 1).await?;
    sqlx::query("UPDATE runs SET seq = ?, modified_at = ? WHERE id = ?")
        .bind(seq)
        .bind(now.to_naive_string())
        .bind(run.to_string())
        .execute(&mut **tx)
        .await
        .map_err(db)?;
    Ok(())
}

async fn load_runs(tx: &mut Transaction<'_, Sqlite>, ids: &[RunId]) -> Result<Vec<RunRecord>, StoreError> {
    let mut out = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(CHUNK) {
        let mut b: QueryBuilder<Sqlite> = QueryBuilder::new(format!("SELECT {RUN_COLUMNS} FROM runs WHERE 1 = 1"));
        push_in(&mut b, "id", chunk.iter().map(ToString::to_string));
        for row in b.build().fetch_all(&mut **tx).await.map_err(db)? {
            out.push(run_from_row(&row)?);
        }
    }
    Ok(out)
}

async fn write_run(tx: &mut Transaction<'_, Sqlite>, r: &RunRecord, insert: bool) -> Result<(), StoreError> {
    let sql = if insert {
        format!(
            "INSERT INTO runs ({RUN_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        )
    } else {
        // Same bind order as the insert; the trailing id selects the row.
        let sets: Vec<String> = RUN_COLUMNS.split(',').map(|c| format!("{} = ?", c.trim())).collect();
        format!("UPDATE runs SET {} WHERE id = ?", sets.join(", "))
    };
    let json = |v: &Option<Value>| v.as_ref().map(Value::to_string);
    let ts = |t: &Option<Timestamp>| t.map(|t| t.to_naive_string());
    let mut q = sqlx::query(&sql)
        .bind(r.id.to_string())
        .bind(r.session_id.to_string())
        .bind(r.trace_id.to_string())
        .bind(r.parent_run_id.map(|p| p.to_string()))
        .bind(&r.dotted_order)
        .bind(&r.name)
        .bind(r.run_type.as_str())
        .bind(r.start_time.to_naive_string())
        .bind(ts(&r.end_time))
        .bind(&r.error)
        .bind(json(&r.inputs))
        .bind(json(&r.outputs))
        .bind(json(&r.extra))
        .bind(json(&r.events))
        .bind(json(&r.serialized))
        .bind(serde_json::to_string(&r.tags).unwrap_or_else(|_| "[]".into()))
        .bind(r.reference_example_id.map(|u| u.to_string()))
        .bind(r.prompt_tokens)
        .bind(r.completion_tokens)
        .bind(r.total_tokens)
        .bind(&r.prompt_cost)
        .bind(&r.completion_cost)
        .bind(&r.total_cost)
        .bind(ts(&r.first_token_time))
        .bind(&r.thread_id)
        .bind(r.seq)
        .bind(r.inserted_at.to_naive_string())
        .bind(r.modified_at.to_naive_string());
    if !insert {
        q = q.bind(r.id.to_string());
    }
    q.execute(&mut **tx).await.map_err(db)?;
    Ok(())
}

/// Inserts feedback unless its id exists; returns whether it was new.
pub(crate) async fn insert_feedback(tx: &mut Transaction<'_, Sqlite>, f: &Feedback) -> Result<bool, StoreError> {
    let sql = format!(
        "INSERT INTO feedback ({FEEDBACK_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING"
    );
    let source = serde_json::to_string(&f.feedback_source).unwrap_or_else(|_| r#"{"type":"api"}"#.into());
    let done = sqlx::query(&sql)
        .bind(f.id.to_string())
        .bind(f.run_id.map(|r| r.to_string()))
        .bind(f.trace_id.map(|r| r.to_string()))
        .bind(f.session_id.map(|s| s.to_string()))
        .bind(&f.key)
        .bind(f.score)
        .bind(f.value.as_ref().map(Value::to_string))
        .bind(&f.comment)
        .bind(f.correction.as_ref().map(Value::to_string))
        .bind(source)
        .bind(f.extra.as_ref().map(Value::to_string))
        .bind(f.created_at.to_naive_string())
        .bind(f.modified_at.to_naive_string())
        .execute(&mut **tx)
        .await
        .map_err(db)?;
    Ok(done.rows_affected() == 1)
}

pub(crate) fn push_in(b: &mut QueryBuilder<'_, Sqlite>, column: &str, values: impl Iterator<Item = String>) {
    b.push(format!(" AND {column} IN ("));
    let mut sep = b.separated(", ");
    for v in values {
        sep.push_bind(v);
    }
    b.push(")");
}

pub(crate) fn parse_id<T: FromStr>(s: &str, column: &'static str) -> Result<T, StoreError> {
    s.parse().map_err(|_| StoreError::Corrupt { column, detail: format!("{s:?} is not a UUID") })
}

fn opt_id<T: FromStr>(s: Option<String>, column: &'static str) -> Result<Option<T>, StoreError> {
    s.map(|s| parse_id(&s, column)).transpose()
}

pub(crate) fn ts(s: Option<String>, column: &'static str) -> Result<Option<Timestamp>, StoreError> {
    s.map(|s| {
        s.parse().map_err(|e: runhook_core::model::time::TimestampError| StoreError::Corrupt {
            column,
            detail: e.to_string(),
        })
    })
    .transpose()
}

fn json(s: Option<String>, column: &'static str) -> Result<Option<Value>, StoreError> {
    s.map(|s| serde_json::from_str(&s).map_err(|e| StoreError::Corrupt { column, detail: e.to_string() })).transpose()
}

pub(crate) fn required<T>(v: Option<T>, column: &'static str) -> Result<T, StoreError> {
    v.ok_or(StoreError::Corrupt { column, detail: "missing".into() })
}

/// A timestamp column that must hold one.
pub(crate) fn req_ts(s: Option<String>, column: &'static str) -> Result<Timestamp, StoreError> {
    required(ts(s, column)?, column)
}

pub(crate) fn run_from_row(row: &SqliteRow) -> Result<RunRecord, StoreError> {
    let run_type: String = row.try_get("run_type").map_err(db)?;
    let tags: String = row.try_get("tags").map_err(db)?;
    Ok(RunRecord {
        id: parse_id(&row.try_get::<String, _>("id").map_err(db)?, "runs.id")?,
        session_id: parse_id(&row.try_get::<String, _>("session_id").map_err(db)?, "runs.session_id")?,
        trace_id: parse_id(&row.try_get::<String, _>("trace_id").map_err(db)?, "runs.trace_id")?,
        parent_run_id: opt_id(row.try_get("parent_run_id").map_err(db)?, "runs.parent_run_id")?,
        dotted_order: row.try_get("dotted_order").map_err(db)?,
        name: row.try_get("name").map_err(db)?,
        run_type: RunType::parse(&run_type)
            .ok_or(StoreError::Corrupt { column: "runs.run_type", detail: run_type.clone() })?,
        start_time: required(ts(row.try_get("start_time").map_err(db)?, "runs.start_time")?, "runs.start_time")?,
        end_time: ts(row.try_get("end_time").map_err(db)?, "runs.end_time")?,
        error: row.try_get("error").map_err(db)?,
        inputs: json(row.try_get("inputs").map_err(db)?, "runs.inputs")?,
        outputs: json(row.try_get("outputs").map_err(db)?, "runs.outputs")?,
        extra: json(row.try_get("extra").map_err(db)?, "runs.extra")?,
        events: json(row.try_get("events").map_err(db)?, "runs.events")?,
        serialized: json(row.try_get("serialized").map_err(db)?, "runs.serialized")?,
        tags: serde_json::from_str(&tags)
            .map_err(|e| StoreError::Corrupt { column: "runs.tags", detail: e.to_string() })?,
        reference_example_id: opt_id(row.try_get("reference_example_id").map_err(db)?, "runs.reference_example_id")?,
        prompt_tokens: row.try_get("prompt_tokens").map_err(db)?,
        completion_tokens: row.try_get("completion_tokens").map_err(db)?,
        total_tokens: row.try_get("total_tokens").map_err(db)?,
        prompt_cost: row.try_get("prompt_cost").map_err(db)?,
        completion_cost: row.try_get("completion_cost").map_err(db)?,
        total_cost: row.try_get("total_cost").map_err(db)?,
        first_token_time: ts(row.try_get("first_token_time").map_err(db)?, "runs.first_token_time")?,
        thread_id: row.try_get("thread_id").map_err(db)?,
        seq: row.try_get("seq").map_err(db)?,
        inserted_at: required(ts(row.try_get("inserted_at").map_err(db)?, "runs.inserted_at")?, "runs.inserted_at")?,
        modified_at: required(ts(row.try_get("modified_at").map_err(db)?, "runs.modified_at")?, "runs.modified_at")?,
    })
}

fn feedback_from_row(row: &SqliteRow) -> Result<Feedback, StoreError> {
    let source: String = row.try_get("feedback_source").map_err(db)?;
    Ok(Feedback {
        id: parse_id(&row.try_get::<String, _>("id").map_err(db)?, "feedback.id")?,
        run_id: opt_id(row.try_get("run_id").map_err(db)?, "feedback.run_id")?,
        trace_id: opt_id(row.try_get("trace_id").map_err(db)?, "feedback.trace_id")?,
        session_id: opt_id(row.try_get("session_id").map_err(db)?, "feedback.session_id")?,
        key: row.try_get("key").map_err(db)?,
        score: row.try_get("score").map_err(db)?,
        value: json(row.try_get("value").map_err(db)?, "feedback.value")?,
        comment: row.try_get("comment").map_err(db)?,
        correction: json(row.try_get("correction").map_err(db)?, "feedback.correction")?,
        feedback_source: serde_json::from_str::<FeedbackSource>(&source)
            .map_err(|e| StoreError::Corrupt { column: "feedback.feedback_source", detail: e.to_string() })?,
        extra: json(row.try_get("extra").map_err(db)?, "feedback.extra")?,
        created_at: required(
            ts(row.try_get("created_at").map_err(db)?, "feedback.created_at")?,
            "feedback.created_at",
        )?,
        modified_at: required(
            ts(row.try_get("modified_at").map_err(db)?, "feedback.modified_at")?,
            "feedback.modified_at",
        )?,
    })
}

fn session_from_row(row: &SqliteRow) -> Result<Session, StoreError> {
    Ok(Session {
        id: parse_id(&row.try_get::<String, _>("id").map_err(db)?, "sessions.id")?,
        name: row.try_get("name").map_err(db)?,
        description: row.try_get("description").map_err(db)?,
        extra: json(row.try_get("extra").map_err(db)?, "sessions.extra")?,
        start_time: required(
            ts(row.try_get("start_time").map_err(db)?, "sessions.start_time")?,
            "sessions.start_time",
        )?,
    })
}
