//! Decoding `POST /runs/multipart` bodies into one [`IngestBatch`].
//!
//! Part names (LangSmith's wire format, as the Python SDK sends it):
//!
//! | part | content |
//! |---|---|
//! | `post.{run_id}`, `patch.{run_id}` | the run without its large fields (JSON) |
//! | `post.{run_id}.{field}`, `patch.{run_id}.{field}` | `inputs`, `outputs`, `events`, `extra`, `error` (a JSON string), `serialized` |
//! | `attachment.{run_id}.{name}` | raw bytes; the part's `Content-Type` is the attachment's |
//! | `feedback.{feedback_id}` | feedback (JSON) |
//!
//! A field part must follow its run's main part. Any malformed part rejects
//! the whole request with a message naming the part, so nothing is stored
//! partially.

use std::collections::HashMap;
use std::convert::Infallible;

use bytes::Bytes;
use serde_json::Value;

use crate::body::{check_values, json};
use crate::{WireError, WireLimits};
use runhook_core::model::{Feedback, FeedbackCreate, FeedbackId, RunId, RunWrite, Timestamp};
use runhook_store::{Attachment, IngestBatch};

/// Decodes a (decompressed) multipart body.
pub async fn decode(content_type: &str, body: Bytes, limits: &WireLimits) -> Result<IngestBatch, WireError> {
    let boundary = multer::parse_boundary(content_type)
        .map_err(|e| WireError::Malformed(format!("expected multipart/form-data with a boundary: {e}")))?;
    let stream = futures_util::stream::once(async move { Ok::<_, Infallible>(body) });
    let mut multipart = multer::Multipart::new(stream, boundary);
    let mut batch = IngestBatch { patch_creates: true, ..IngestBatch::default() };
    // (is_patch, run) -> index into posts or patches
    let mut ops: HashMap<(bool, RunId), usize> = HashMap::new();
    let now = Timestamp::now();
    let mut index = 0usize;
    // Bytes of each run's parts so far, and JSON values in the request.
    let mut run_bytes: HashMap<(bool, RunId), usize> = HashMap::new();
    let mut values = 0usize;
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(e) => {
                return Err(WireError::Malformed(format!("malformed multipart body after part {index}: {e}")));
            }
        };
        index += 1;
        let name = field.name().map(str::to_string).ok_or_else(|| {
            WireError::Malformed(format!("multipart part {index} has no name in its Content-Disposition"))
        })?;
        let mime = field.content_type().map(|m| m.to_string());
        let data = field.bytes().await.map_err(|e| WireError::Malformed(format!("part {name:?}: cannot read: {e}")))?;
        if !name.starts_with("attachment.") {
            check_values(&data, || format!("part {name:?} and those before it"), &mut values, limits.max_json_values)?;
        }
        let mut segments = name.splitn(3, '.');
        let kind = segments.next().unwrap_or_default();
        let id = segments.next().unwrap_or_default();
        let rest = segments.next();
        match (kind, rest) {
            ("post" | "patch", None) => {
                let run = parse_run_id(&name, id)?;
                add_run_bytes(&mut run_bytes, (kind == "patch", run), data.len(), limits.max_run_bytes)?;
                let mut w: RunWrite = json(&data, &format!("part {name:?}"))?;
                if w.id.is_some_and(|body_id| body_id != run) {
                    return Err(WireError::Malformed(format!("part {name:?}: body id differs from the part name")));
                }
                w.id = Some(run);
                let is_patch = kind == "patch";
                let list = if is_patch { &mut batch.patches } else { &mut batch.posts };
                ops.insert((is_patch, run), list.len());
                list.push(w);
            }
            ("post" | "patch", Some(field_name)) => {
                let run = parse_run_id(&name, id)?;
                let is_patch = kind == "patch";
                let slot = ops.get(&(is_patch, run)).copied().ok_or_else(|| {
                    WireError::Malformed(format!("part {name:?} comes before (or without) its part \"{kind}.{run}\""))
                })?;
                add_run_bytes(&mut run_bytes, (is_patch, run), data.len(), limits.max_run_bytes)?;
                let w = if is_patch { &mut batch.patches[slot] } else { &mut batch.posts[slot] };
                set_field(w, &name, field_name, &data)?;
            }
            ("attachment", Some(att)) => {
                let run = parse_run_id(&name, id)?;
                if att.is_empty() || att.contains('.') || att.contains('/') {
                    return Err(WireError::Malformed(format!(
                        "part {name:?}: attachment names must be non-empty, without '.' or '/'"
                    )));
                }
                let mime = mime.map(|m| m.split(';').next().unwrap_or_default().trim().to_string());
                batch.attachments.push(Attachment {
                    run_id: run,
                    name: att.to_string(),
                    mime: mime.filter(|m| !m.is_empty()).unwrap_or_else(|| "application/octet-stream".into()),
                    data,
                });
            }
            ("feedback", None) => {
                let fid: FeedbackId =
                    id.parse().map_err(|_| WireError::Malformed(format!("part {name:?}: {id:?} is not a UUID")))?;
                let mut c: FeedbackCreate = json(&data, &format!("part {name:?}"))?;
                c.id.get_or_insert(fid);
                let f = Feedback::create(c, now).map_err(|e| WireError::Invalid(format!("part {name:?}: {e}")))?;
                batch.feedback.push(f);
            }
            _ => {
                return Err(WireError::Malformed(format!(
                    "unknown multipart part {name:?}; expected post.<run_id>[.<field>], patch.<run_id>[.<field>], \
                     attachment.<run_id>.<name> or feedback.<feedback_id>"
                )));
            }
        }
    }
    if index == 0 {
        return Err(WireError::Malformed("multipart body has no parts".into()));
    }
    crate::batch::check_runs(batch.posts.len() + batch.patches.len(), limits.max_runs_per_request)?;
    Ok(batch)
}

/// Counts `len` more bytes for the run, refusing it past `max`.
fn add_run_bytes(
    sizes: &mut HashMap<(bool, RunId), usize>,
    key: (bool, RunId),
    len: usize,
    max: usize,
) -> Result<(), WireError> {
    let total = sizes.entry(key).or_default();
    *total += len;
    if *total > max {
        let (kind, run) = (if key.0 { "patch" } else { "post" }, key.1);
        return Err(WireError::TooLarge(format!(
            "{kind} of run {run}: its parts are more than {max} bytes; a run is at most that (limits.max_run_bytes)"
        )));
    }
    Ok(())
}

fn parse_run_id(part: &str, id: &str) -> Result<RunId, WireError> {
    id.parse().map_err(|_| WireError::Malformed(format!("part {part:?}: {id:?} is not a UUID")))
}

fn set_field(w: &mut RunWrite, part: &str, field: &str, data: &[u8]) -> Result<(), WireError> {
    let what = format!("part {part:?}");
    match field {
        "inputs" => w.inputs = Some(json::<Value>(data, &what)?),
        "outputs" => w.outputs = Some(json::<Value>(data, &what)?),
        "extra" => w.extra = Some(json::<Value>(data, &what)?),
        "serialized" => w.serialized = Some(json::<Value>(data, &what)?),
        "events" => w.events = Some(json::<Vec<Value>>(data, &what)?),
        "error" => w.error = json::<Option<String>>(data, &what)?,
        other => {
            return Err(WireError::Malformed(format!(
                "{what}: unknown run field {other:?}; expected inputs, outputs, events, extra, error or serialized"
            )));
        }
    }
    Ok(())
}
