//! Reading and binding Postgres's representation of the model: ids as
//! `uuid`, times as `timestamptz` (microseconds, as runhook keeps them),
//! JSON fields as text, the change sequence as the pair (transaction id,
//! sequence value). Every decoding failure is [`StoreError::Corrupt`]
//! naming the column.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::Row;
use sqlx::postgres::PgRow;
use uuid::Uuid;

use runhook_core::model::{
    ChangeSeq, Feedback, FeedbackId, FeedbackSource, RunId, RunRecord, RunType, Session, SessionId, Timestamp,
};
use runhook_store::StoreError;

use crate::error::db;

/// The change-sequence position `(xid, seq)`.
pub(crate) fn seq(xid: i64, n: i64) -> ChangeSeq {
    ChangeSeq::from_parts(xid, n)
}

pub(crate) const RUN_COLUMNS: &str = "id, session_id, trace_id, parent_run_id, dotted_order, name, run_type, start_time, end_time, \
     error, inputs, outputs, extra, events, serialized, tags, reference_example_id, prompt_tokens, completion_tokens, \
     total_tokens, prompt_cost, completion_cost, total_cost, first_token_time, thread_id, change_xid, seq, inserted_at, \
     modified_at";

/// [`RUN_COLUMNS`] without the large fields' contents (`RunQuery::lean`).
pub(crate) const LEAN_RUN_COLUMNS: &str = "id, session_id, trace_id, parent_run_id, dotted_order, name, run_type, start_time, \
     end_time, error, NULL::text AS inputs, NULL::text AS outputs, extra, NULL::text AS events, NULL::text AS serialized, tags, \
     reference_example_id, prompt_tokens, completion_tokens, total_tokens, prompt_cost, completion_cost, total_cost, \
     first_token_time, thread_id, change_xid, seq, inserted_at, modified_at";

pub(crate) const FEEDBACK_COLUMNS: &str = "id, run_id, trace_id, session_id, key, score, value, comment, correction, \
     feedback_source, extra, created_at, modified_at";

/// The uuids of typed ids, for `= ANY($n)`.
pub(crate) fn uuids<'a, T: 'a + Copy>(ids: impl IntoIterator<Item = &'a T>, f: impl Fn(T) -> Uuid) -> Vec<Uuid> {
    ids.into_iter().map(|i| f(*i)).collect()
}

/// A time as bound.
pub(crate) fn at(t: Timestamp) -> DateTime<Utc> {
    t.as_datetime()
}

pub(crate) fn get<'r, T>(row: &'r PgRow, column: &str) -> Result<T, StoreError>
where
    T: sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
{
    row.try_get(column).map_err(db)
}

pub(crate) fn time(row: &PgRow, column: &str) -> Result<Timestamp, StoreError> {
    Ok(Timestamp::from_datetime(get::<DateTime<Utc>>(row, column)?))
}

pub(crate) fn opt_time(row: &PgRow, column: &str) -> Result<Option<Timestamp>, StoreError> {
    Ok(get::<Option<DateTime<Utc>>>(row, column)?.map(Timestamp::from_datetime))
}

pub(crate) fn json(row: &PgRow, column: &str, name: &'static str) -> Result<Option<Value>, StoreError> {
    get::<Option<String>>(row, column)?
        .map(|s| serde_json::from_str(&s).map_err(|e| StoreError::corrupt(name, e)))
        .transpose()
}

/// A JSON field as stored.
pub(crate) fn json_text(v: &Option<Value>) -> Option<String> {
    v.as_ref().map(Value::to_string)
}

pub(crate) fn run_from_row(row: &PgRow) -> Result<RunRecord, StoreError> {
    let run_type: String = get(row, "run_type")?;
    let tags: String = get(row, "tags")?;
    Ok(RunRecord {
        id: RunId(get(row, "id")?),
        session_id: SessionId(get(row, "session_id")?),
        trace_id: RunId(get(row, "trace_id")?),
        parent_run_id: get::<Option<Uuid>>(row, "parent_run_id")?.map(RunId),
        dotted_order: get(row, "dotted_order")?,
        name: get(row, "name")?,
        run_type: RunType::parse(&run_type).ok_or_else(|| StoreError::corrupt("runs.run_type", &run_type))?,
        start_time: time(row, "start_time")?,
        end_time: opt_time(row, "end_time")?,
        error: get(row, "error")?,
        inputs: json(row, "inputs", "runs.inputs")?,
        outputs: json(row, "outputs", "runs.outputs")?,
        extra: json(row, "extra", "runs.extra")?,
        events: json(row, "events", "runs.events")?,
        serialized: json(row, "serialized", "runs.serialized")?,
        tags: serde_json::from_str(&tags).map_err(|e| StoreError::corrupt("runs.tags", e))?,
        reference_example_id: get(row, "reference_example_id")?,
        prompt_tokens: get(row, "prompt_tokens")?,
        completion_tokens: get(row, "completion_tokens")?,
        total_tokens: get(row, "total_tokens")?,
        prompt_cost: get(row, "prompt_cost")?,
        completion_cost: get(row, "completion_cost")?,
        total_cost: get(row, "total_cost")?,
        first_token_time: opt_time(row, "first_token_time")?,
        thread_id: get(row, "thread_id")?,
        seq: seq(get(row, "change_xid")?, get(row, "seq")?),
        inserted_at: time(row, "inserted_at")?,
        modified_at: time(row, "modified_at")?,
    })
}

pub(crate) fn feedback_from_row(row: &PgRow) -> Result<Feedback, StoreError> {
    let source: String = get(row, "feedback_source")?;
    Ok(Feedback {
        id: FeedbackId(get(row, "id")?),
        run_id: get::<Option<Uuid>>(row, "run_id")?.map(RunId),
        trace_id: get::<Option<Uuid>>(row, "trace_id")?.map(RunId),
        session_id: get::<Option<Uuid>>(row, "session_id")?.map(SessionId),
        key: get(row, "key")?,
        score: get(row, "score")?,
        value: json(row, "value", "feedback.value")?,
        comment: get(row, "comment")?,
        correction: json(row, "correction", "feedback.correction")?,
        feedback_source: serde_json::from_str::<FeedbackSource>(&source)
            .map_err(|e| StoreError::corrupt("feedback.feedback_source", e))?,
        extra: json(row, "extra", "feedback.extra")?,
        created_at: time(row, "created_at")?,
        modified_at: time(row, "modified_at")?,
    })
}

pub(crate) fn session_from_row(row: &PgRow) -> Result<Session, StoreError> {
    Ok(Session {
        id: SessionId(get(row, "id")?),
        name: get(row, "name")?,
        description: get(row, "description")?,
        extra: json(row, "extra", "sessions.extra")?,
        start_time: time(row, "start_time")?,
    })
}
