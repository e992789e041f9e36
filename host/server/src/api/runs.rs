//! Run reads: `GET /runs/{id}`, `POST /runs/query`, attachment downloads.
//!
//! Responses carry LangSmith's derived fields: `status`, `is_root`, the
//! ancestry and descendant ids, `feedback_stats`, `app_path` ... computed
//! per page with one query for the page's trace trees and one for its
//! feedback. `/runs/query` pages newest first with an opaque cursor.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::error::ApiError;
use super::{AppState, body, path_id, query_pairs};
use crate::payload::{self, Needs};
use crate::select::{Budget, SelectError, Selection};
use runhook_core::model::view::s3_urls;
use runhook_core::model::{RunId, RunRecord, RunType, SessionId, Timestamp};
use runhook_store::{RunCursor, RunQuery};

/// Most runs one `/runs/query` page returns.
const MAX_PAGE: usize = 100;

/// The stored text of large fields one page may hold before it ends early
/// (the SDK follows the cursor): a page of very large runs costs about
/// this, not a hundred times the largest run.
const PAGE_BYTES: usize = 32 << 20;

/// Fields a lean read leaves out (see `RunQuery::lean`).
const LARGE_FIELDS: [&str; 4] = ["inputs", "outputs", "events", "serialized"];

/// Candidates fetched per step when a filter has to be evaluated.
const SCAN_PAGE: usize = 500;

/// Fields every returned run keeps, whatever `select` says: the SDK's
/// `Run` model cannot be built without them.
const ALWAYS: [&str; 6] = ["id", "name", "run_type", "start_time", "trace_id", "dotted_order"];

pub(super) async fn read(State(state): State<AppState>, Path(raw): Path<String>) -> Result<Json<Value>, ApiError> {
    let id: RunId = path_id("run id", &raw)?;
    let run = state.store.get_run(id).await?.ok_or_else(|| ApiError::NotFound(format!("run {id} not found")))?;
    let mut rendered = render(&state, std::slice::from_ref(&run), None).await?;
    Ok(Json(Value::Object(rendered.pop().unwrap_or_default())))
}

/// Renders runs with their derived fields, keeping only `select` (when
/// given); trees, feedback and attachments are loaded only when selected.
pub(super) async fn render(
    state: &AppState,
    runs: &[RunRecord],
    select: Option<&[String]>,
) -> Result<Vec<Map<String, Value>>, ApiError> {
    let wants = |f: &str| select.is_none_or(|s| s.iter().any(|x| x == f));
    let needs =
        Needs { tree: wants("child_run_ids") || wants("direct_child_run_ids"), feedback: wants("feedback_stats") };
    let rendered = payload::render(state.store.as_ref(), runs, needs).await?;
    let mut out = Vec::with_capacity(runs.len());
    for r in rendered {
        let mut map = r.json;
        if wants("s3_urls") {
            let attachments: Vec<(String, String, String)> = state
                .store
                .list_attachments(r.id)
                .await?
                .into_iter()
                .map(|(name, mime)| {
                    let url = state.key.attachment_url(r.id, &name);
                    (name, mime, url)
                })
                .collect();
            map.insert("s3_urls".into(), s3_urls(&attachments));
        }
        if let Some(select) = select {
            map.retain(|k, _| ALWAYS.contains(&k.as_str()) || select.iter().any(|s| s == k));
        }
        out.push(map);
    }
    Ok(out)
}

/// The `/runs/query` body (LangSmith's `BodyParamsForRunsQuerySchema`).
/// Unknown keys are ignored, as the SDK forwards arbitrary kwargs.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct QueryBody {
    id: Option<Vec<RunId>>,
    session: Option<Vec<SessionId>>,
    trace: Option<RunId>,
    parent_run: Option<RunId>,
    run_type: Option<RunType>,
    is_root: Option<bool>,
    error: Option<bool>,
    start_time: Option<Timestamp>,
    reference_example: Option<Vec<Uuid>>,
    cursor: Option<String>,
    limit: Option<usize>,
    select: Option<Vec<String>>,
    filter: Option<String>,
    trace_filter: Option<String>,
    tree_filter: Option<String>,
    order: Option<String>,
}

pub(super) async fn query(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let bytes = body::read_json(&headers, body, state.limits).await?;
    let q: QueryBody = if bytes.is_empty() { QueryBody::default() } else { body::json(&bytes, "run query")? };
    if let Some(order) = q.order.as_deref().filter(|o| *o != "desc") {
        return Err(ApiError::BadRequest(format!(
            "order {order:?} is not supported; runs are listed newest first (desc)"
        )));
    }
    let max = state.limits.max_list_items;
    for (what, len) in [
        ("id", q.id.as_ref().map_or(0, Vec::len)),
        ("session", q.session.as_ref().map_or(0, Vec::len)),
        ("reference_example", q.reference_example.as_ref().map_or(0, Vec::len)),
        ("select", q.select.as_ref().map_or(0, Vec::len)),
    ] {
        body::check_list(what, len, max, "limits.max_list_items")?;
    }
    let selection = Selection::parse(q.filter.as_deref(), q.trace_filter.as_deref(), q.tree_filter.as_deref())
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let limit = match q.limit {
        None => MAX_PAGE,
        Some(0) => return Err(ApiError::BadRequest("limit must be at least 1".into())),
        Some(n) => n.min(MAX_PAGE),
    };
    let mut query = RunQuery {
        ids: q.id.unwrap_or_default(),
        sessions: q.session.unwrap_or_default(),
        trace: q.trace,
        parent_run: q.parent_run,
        run_type: q.run_type,
        is_root: q.is_root,
        error: q.error,
        start_time: q.start_time,
        reference_examples: q.reference_example.unwrap_or_default(),
        cursor: q.cursor.as_deref().map(decode_cursor).transpose()?,
        limit,
        // The large fields are read only when returned or filtered on.
        lean: selection.is_empty()
            && q.select.as_ref().is_some_and(|s| !s.iter().any(|f| LARGE_FIELDS.contains(&f.as_str()))),
        max_bytes: Some(PAGE_BYTES),
    };
    let (runs, next) = if selection.is_empty() {
        state.store.query_runs(&query).await?
    } else {
        // Scan candidate pages until the page is full or the runs run out;
        // the cursor then points after the last run returned.
        let mut found: Vec<RunRecord> = Vec::new();
        query.limit = SCAN_PAGE;
        // Dropped with this future when the client disconnects, which
        // stops the evaluation on its blocking thread.
        let budget = Budget::within(state.limits.request_timeout);
        let _abandon = budget.abandon_on_drop();
        let next = loop {
            let (candidates, next) = state.store.query_runs(&query).await?;
            let last = candidates.last().map(|r| RunCursor { start_time: r.start_time, id: r.id });
            for run in selection.retain(state.store.as_ref(), candidates, &budget).await.map_err(select_error)? {
                if found.len() == limit {
                    break;
                }
                found.push(run);
            }
            if found.len() == limit {
                break found.last().map(|r| RunCursor { start_time: r.start_time, id: r.id });
            }
            match next {
                Some(_) => query.cursor = last,
                None => break None,
            }
        };
        (found, next)
    };
    let rendered = render(&state, &runs, q.select.as_deref()).await?;
    Ok(Json(json!({"runs": rendered, "cursors": {"next": next.as_ref().map(encode_cursor)}})))
}

fn select_error(e: SelectError) -> ApiError {
    match e {
        SelectError::Store(e) => e.into(),
        SelectError::Deadline(_) => ApiError::Unprocessable(format!(
            "{e} (limits.request_timeout_ms): narrow the query with session, start_time or a cheaper filter"
        )),
        SelectError::Abandoned => ApiError::BadRequest(e.to_string()),
        SelectError::Worker(_) => ApiError::Internal(Box::new(e)),
    }
}

fn encode_cursor(c: &RunCursor) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}|{}", c.start_time, c.id))
}

fn decode_cursor(s: &str) -> Result<RunCursor, ApiError> {
    let bad = || ApiError::BadRequest(format!("invalid cursor {s:?}: pass back cursors.next unchanged"));
    let raw = URL_SAFE_NO_PAD.decode(s).map_err(|_| bad())?;
    let text = String::from_utf8(raw).map_err(|_| bad())?;
    let (time, id) = text.split_once('|').ok_or_else(bad)?;
    Ok(RunCursor { start_time: time.parse().map_err(|_| bad())?, id: id.parse().map_err(|_| bad())? })
}

/// Serves an attachment to the holder of a signed URL.
pub(super) async fn attachment(
    State(state): State<AppState>,
    Path((run, name)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let run: RunId = path_id("run id", &run)?;
    let pairs = query_pairs(raw.as_deref(), &state.limits)?;
    let get = |k: &str| pairs.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str());
    let expires = get("expires").and_then(|e| e.parse::<i64>().ok());
    let authorised = match (expires, get("sig")) {
        (Some(expires), Some(sig)) => state.key.verify(run, &name, expires, sig),
        _ => false,
    };
    if !authorised {
        return Err(ApiError::Unauthorized);
    }
    let (mime, data) = state
        .store
        .get_attachment(run, &name)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("run {run} has no attachment {name:?}")))?;
    // The bytes are the uploader's: never let a browser run them in this
    // origin, whatever type they claim.
    let disposition = format!("attachment; filename=\"{}\"", safe_filename(&name));
    Ok((
        [
            (header::CONTENT_TYPE, mime),
            (header::CONTENT_DISPOSITION, disposition),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_string()),
            (header::CONTENT_SECURITY_POLICY, "default-src 'none'; sandbox".to_string()),
        ],
        data,
    )
        .into_response())
}

/// Serves a run's large inputs or outputs to the holder of the signed link
/// a webhook payload carried in their place (`inputs_s3_urls`, ...).
pub(super) async fn io(
    State(state): State<AppState>,
    Path((run, field)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let pairs = query_pairs(raw.as_deref(), &state.limits)?;
    let get = |k: &str| pairs.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str());
    let expires = get("expires").and_then(|e| e.parse::<i64>().ok());
    let authorised = match (expires, get("sig")) {
        (Some(expires), Some(sig)) => state.key.links().verify(&payload::io_path(&run, &field), expires, sig),
        _ => false,
    };
    if !authorised {
        return Err(ApiError::Unauthorized);
    }
    let id: RunId = path_id("run id", &run)?;
    let found = state.store.get_run(id).await?.ok_or_else(|| ApiError::NotFound(format!("run {id} not found")))?;
    let value = match field.as_str() {
        "inputs" => found.inputs,
        "outputs" => found.outputs,
        other => return Err(ApiError::NotFound(format!("a run has no large field {other:?}"))),
    };
    let text = serde_json::to_string(&value.unwrap_or(Value::Null)).map_err(|e| ApiError::Internal(Box::new(e)))?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/json".to_string()),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_string()),
            (header::CONTENT_SECURITY_POLICY, "default-src 'none'; sandbox".to_string()),
        ],
        text,
    )
        .into_response())
}

/// An attachment's name as a quoted `filename`: printable ASCII without
/// quotes or backslashes, anything else replaced by `_`.
fn safe_filename(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_graphic() && c != '"' && c != '\\' { c } else { '_' }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let c = RunCursor { start_time: Timestamp::now(), id: RunId::new_v7() };
        assert_eq!(decode_cursor(&encode_cursor(&c)).unwrap(), c);
        assert!(decode_cursor("???").is_err());
        assert!(decode_cursor(&URL_SAFE_NO_PAD.encode("no-separator")).is_err());
    }
}
