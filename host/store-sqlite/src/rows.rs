//! Reading and binding SQLite's representation of the model: ids as
//! hyphenated text, JSON fields as text, timestamps in the offset-free UTC
//! form (which sorts in time order), the change sequence as one integer.
//! Every decoding failure is [`StoreError::Corrupt`] naming the column.

use std::str::FromStr;

use serde_json::Value;
use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Row, Sqlite};

use runhook_core::model::{ChangeSeq, Feedback, FeedbackSource, RunRecord, RunType, Session, Timestamp};
use runhook_store::rules::outcome_from;
use runhook_store::{RuleRunLog, StoreError};

use crate::error::db;

/// The change sequence as this store keeps it: one counter, bumped by the
/// single writer, so commit order is count order (the first part is 0).
pub(crate) fn seq(value: i64) -> ChangeSeq {
    ChangeSeq::from_parts(0, value)
}

/// The counter value of a position this store made.
pub(crate) fn seq_value(seq: ChangeSeq) -> i64 {
    seq.parts().1
}

/// SQLite's limit on bound parameters is far above this; chunks keep
/// statements small.
pub(crate) const CHUNK: usize = 400;

pub(crate) const RUN_COLUMNS: &str = "id, session_id, trace_id, parent_run_id, dotted_order, name, run_type, start_time, end_time, \
     error, inputs, outputs, extra, events, serialized, tags, reference_example_id, prompt_tokens, completion_tokens, \
     total_tokens, prompt_cost, completion_cost, total_cost, first_token_time, thread_id, seq, inserted_at, modified_at";

/// [`RUN_COLUMNS`] without the large fields' contents (`RunQuery::lean`).
pub(crate) const LEAN_RUN_COLUMNS: &str = "id, session_id, trace_id, parent_run_id, dotted_order, name, run_type, start_time, \
     end_time, error, NULL AS inputs, NULL AS outputs, extra, NULL AS events, NULL AS serialized, tags, reference_example_id, \
     prompt_tokens, completion_tokens, total_tokens, prompt_cost, completion_cost, total_cost, first_token_time, thread_id, \
     seq, inserted_at, modified_at";

pub(crate) const FEEDBACK_COLUMNS: &str = "id, run_id, trace_id, session_id, key, score, value, comment, correction, \
     feedback_source, extra, created_at, modified_at";

pub(crate) fn push_in(b: &mut QueryBuilder<'_, Sqlite>, column: &str, values: impl Iterator<Item = String>) {
    b.push(format!(" AND {column} IN ("));
    let mut sep = b.separated(", ");
    for v in values {
        sep.push_bind(v);
    }
    b.push(")");
}

pub(crate) fn parse_id<T: FromStr>(s: &str, column: &'static str) -> Result<T, StoreError> {
    s.parse().map_err(|_| StoreError::corrupt(column, format!("{s:?} is not a UUID")))
}

pub(crate) fn opt_id<T: FromStr>(s: Option<String>, column: &'static str) -> Result<Option<T>, StoreError> {
    s.map(|s| parse_id(&s, column)).transpose()
}

pub(crate) fn ts(s: Option<String>, column: &'static str) -> Result<Option<Timestamp>, StoreError> {
    s.map(|s| s.parse().map_err(|e: runhook_core::model::time::TimestampError| StoreError::corrupt(column, e)))
        .transpose()
}

pub(crate) fn json(s: Option<String>, column: &'static str) -> Result<Option<Value>, StoreError> {
    s.map(|s| serde_json::from_str(&s).map_err(|e| StoreError::corrupt(column, e))).transpose()
}

pub(crate) fn required<T>(v: Option<T>, column: &'static str) -> Result<T, StoreError> {
    v.ok_or_else(|| StoreError::corrupt(column, "missing"))
}

/// A timestamp column that must hold one.
pub(crate) fn req_ts(s: Option<String>, column: &'static str) -> Result<Timestamp, StoreError> {
    required(ts(s, column)?, column)
}

/// A result row as sqlx or rusqlite hands it over: what decoding a run
/// needs from either (the window reads go through rusqlite, see `direct`).
pub(crate) trait Columns {
    /// A text column (`None` for NULL).
    fn text(&self, column: &'static str) -> Result<Option<String>, StoreError>;
    /// An integer column (`None` for NULL).
    fn int(&self, column: &'static str) -> Result<Option<i64>, StoreError>;
}

impl Columns for SqliteRow {
    fn text(&self, column: &'static str) -> Result<Option<String>, StoreError> {
        self.try_get(column).map_err(db)
    }

    fn int(&self, column: &'static str) -> Result<Option<i64>, StoreError> {
        self.try_get(column).map_err(db)
    }
}

impl Columns for rusqlite::Row<'_> {
    fn text(&self, column: &'static str) -> Result<Option<String>, StoreError> {
        self.get(run_column(column)?).map_err(db)
    }

    fn int(&self, column: &'static str) -> Result<Option<i64>, StoreError> {
        self.get(run_column(column)?).map_err(db)
    }
}

/// The position of `column` in [`RUN_COLUMNS`] (and [`LEAN_RUN_COLUMNS`]):
/// rusqlite looks a name up through SQLite's C API on every read, which
/// cost more than decoding the run.
fn run_column(column: &'static str) -> Result<usize, StoreError> {
    static NAMES: std::sync::LazyLock<Vec<&'static str>> =
        std::sync::LazyLock::new(|| RUN_COLUMNS.split(',').map(str::trim).collect());
    NAMES.iter().position(|n| *n == column).ok_or_else(|| StoreError::corrupt("runs", format!("no column {column}")))
}

pub(crate) fn run_from_row(row: &impl Columns) -> Result<RunRecord, StoreError> {
    let text = |c: &'static str| -> Result<String, StoreError> { required(row.text(c)?, c) };
    let run_type = text("run_type")?;
    let tags = text("tags")?;
    Ok(RunRecord {
        id: parse_id(&text("id")?, "runs.id")?,
        session_id: parse_id(&text("session_id")?, "runs.session_id")?,
        trace_id: parse_id(&text("trace_id")?, "runs.trace_id")?,
        parent_run_id: opt_id(row.text("parent_run_id")?, "runs.parent_run_id")?,
        dotted_order: text("dotted_order")?,
        name: text("name")?,
        run_type: RunType::parse(&run_type).ok_or_else(|| StoreError::corrupt("runs.run_type", &run_type))?,
        start_time: req_ts(row.text("start_time")?, "runs.start_time")?,
        end_time: ts(row.text("end_time")?, "runs.end_time")?,
        error: row.text("error")?,
        inputs: json(row.text("inputs")?, "runs.inputs")?,
        outputs: json(row.text("outputs")?, "runs.outputs")?,
        extra: json(row.text("extra")?, "runs.extra")?,
        events: json(row.text("events")?, "runs.events")?,
        serialized: json(row.text("serialized")?, "runs.serialized")?,
        tags: serde_json::from_str(&tags).map_err(|e| StoreError::corrupt("runs.tags", e))?,
        reference_example_id: opt_id(row.text("reference_example_id")?, "runs.reference_example_id")?,
        prompt_tokens: row.int("prompt_tokens")?,
        completion_tokens: row.int("completion_tokens")?,
        total_tokens: row.int("total_tokens")?,
        prompt_cost: row.text("prompt_cost")?,
        completion_cost: row.text("completion_cost")?,
        total_cost: row.text("total_cost")?,
        first_token_time: ts(row.text("first_token_time")?, "runs.first_token_time")?,
        thread_id: row.text("thread_id")?,
        seq: seq(required(row.int("seq")?, "runs.seq")?),
        inserted_at: req_ts(row.text("inserted_at")?, "runs.inserted_at")?,
        modified_at: req_ts(row.text("modified_at")?, "runs.modified_at")?,
    })
}

pub(crate) fn feedback_from_row(row: &SqliteRow) -> Result<Feedback, StoreError> {
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
            .map_err(|e| StoreError::corrupt("feedback.feedback_source", e))?,
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

pub(crate) fn session_from_row(row: &SqliteRow) -> Result<Session, StoreError> {
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

/// A line of a rule's log.
pub(crate) fn log_from_row(row: &SqliteRow) -> Result<RuleRunLog, StoreError> {
    Ok(RuleRunLog {
        rule_id: parse_id(&row.try_get::<String, _>("rule_id").map_err(db)?, "rule_runs.rule_id")?,
        run_id: parse_id(&row.try_get::<String, _>("run_id").map_err(db)?, "rule_runs.run_id")?,
        run_name: row.try_get("run_name").map_err(db)?,
        run_type: row.try_get("run_type").map_err(db)?,
        session_id: parse_id(&row.try_get::<String, _>("session_id").map_err(db)?, "rule_runs.session_id")?,
        thread_id: row.try_get("thread_id").map_err(db)?,
        window_start: req_ts(row.try_get("window_start").map_err(db)?, "rule_runs.window_start")?,
        window_end: req_ts(row.try_get("window_end").map_err(db)?, "rule_runs.window_end")?,
        applied_at: req_ts(row.try_get("applied_at").map_err(db)?, "rule_runs.applied_at")?,
        webhooks: outcome_from(row.try_get("webhooks").map_err(db)?),
        evaluators: outcome_from(row.try_get("evaluators").map_err(db)?),
        add_to_dataset: outcome_from(row.try_get("add_to_dataset").map_err(db)?),
        add_to_annotation_queue: outcome_from(row.try_get("add_to_annotation_queue").map_err(db)?),
    })
}
