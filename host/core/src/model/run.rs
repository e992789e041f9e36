//! Runs: what the SDK writes ([`RunWrite`]) and what is stored ([`RunRecord`]).
//!
//! The SDK posts a run when it starts and patches it when it ends; within
//! one batch it merges the two into a single post. Batches can also arrive
//! out of order when the SDK scales up its sender threads. So both
//! operations are merges: a post fills the fields the stored run lacks (a
//! repeated post changes nothing), and a patch overwrites the fields it
//! carries. A patch for a run not yet stored creates it, provided it carries
//! what a run needs (the SDK's patches do: name, run_type, start_time ...).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::ids::{RunId, SessionId};
use super::time::Timestamp;

/// The kind of a run, as LangSmith's `RunTypeEnum` defines it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunType {
    /// A tool call.
    Tool,
    /// A chain (any composite step).
    Chain,
    /// An LLM or chat model call.
    Llm,
    /// A retriever call.
    Retriever,
    /// An embedding call.
    Embedding,
    /// A prompt formatting step.
    Prompt,
    /// An output parser.
    Parser,
}

impl RunType {
    /// Every run type, for messages.
    pub const ALL: [RunType; 7] = [
        RunType::Tool,
        RunType::Chain,
        RunType::Llm,
        RunType::Retriever,
        RunType::Embedding,
        RunType::Prompt,
        RunType::Parser,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            RunType::Tool => "tool",
            RunType::Chain => "chain",
            RunType::Llm => "llm",
            RunType::Retriever => "retriever",
            RunType::Embedding => "embedding",
            RunType::Prompt => "prompt",
            RunType::Parser => "parser",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

/// A run as the SDK posts or patches it. Every field is optional here;
/// [`RunRecord::create`] says which ones a new run needs.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RunWrite {
    /// The run's id (the URL carries it for `PATCH /runs/{id}`).
    pub id: Option<RunId>,
    /// Display name, e.g. `ChatOpenAI`.
    pub name: Option<String>,
    /// The kind of run.
    pub run_type: Option<RunType>,
    /// When it started.
    pub start_time: Option<Timestamp>,
    /// When it ended; a run is finished (and eligible for rules) once set.
    pub end_time: Option<Timestamp>,
    /// Inputs (a JSON object).
    pub inputs: Option<Value>,
    /// Outputs (a JSON object).
    pub outputs: Option<Value>,
    /// Extra: `metadata`, `runtime`, ...
    pub extra: Option<Value>,
    /// The error text, when the run failed.
    pub error: Option<String>,
    /// The serialized model or chain (LLM and prompt runs).
    pub serialized: Option<Value>,
    /// Events such as streamed tokens.
    pub events: Option<Vec<Value>>,
    /// Tags.
    pub tags: Option<Vec<String>>,
    /// The trace (root run) this run belongs to.
    pub trace_id: Option<RunId>,
    /// `YYYYMMDDTHHMMSSffffffZ<uuid>` segments from the root, joined by `.`.
    pub dotted_order: Option<String>,
    /// The parent run, for child runs.
    pub parent_run_id: Option<RunId>,
    /// The project, by id.
    pub session_id: Option<SessionId>,
    /// The project, by name (created on first use).
    pub session_name: Option<String>,
    /// The dataset example this run was evaluated on.
    pub reference_example_id: Option<Uuid>,
    /// Token counts, when the client sends them directly.
    pub prompt_tokens: Option<i64>,
    /// See `prompt_tokens`.
    pub completion_tokens: Option<i64>,
    /// See `prompt_tokens`.
    pub total_tokens: Option<i64>,
    /// Costs, decimal numbers or strings.
    pub prompt_cost: Option<Value>,
    /// See `prompt_cost`.
    pub completion_cost: Option<Value>,
    /// See `prompt_cost`.
    pub total_cost: Option<Value>,
    /// When the first streamed token arrived.
    pub first_token_time: Option<Timestamp>,
}

/// Why a run write cannot be stored.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InvalidRun {
    /// A field a new run needs is missing.
    #[error("run {run}: missing required field {field:?}")]
    Missing {
        /// The run.
        run: String,
        /// The field.
        field: &'static str,
    },
    /// A field has a value of the right type but an invalid shape.
    #[error("run {run}: field {field:?} {problem}")]
    Invalid {
        /// The run.
        run: String,
        /// The field.
        field: &'static str,
        /// What is wrong.
        problem: String,
    },
}

/// A stored run.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRecord {
    /// The run's id.
    pub id: RunId,
    /// Its project.
    pub session_id: SessionId,
    /// Its trace (the root run's id).
    pub trace_id: RunId,
    /// Its parent, unless it is a root.
    pub parent_run_id: Option<RunId>,
    /// Position in the trace tree.
    pub dotted_order: String,
    /// Display name.
    pub name: String,
    /// The kind of run.
    pub run_type: RunType,
    /// When it started.
    pub start_time: Timestamp,
    /// When it ended.
    pub end_time: Option<Timestamp>,
    /// The error text.
    pub error: Option<String>,
    /// Inputs.
    pub inputs: Option<Value>,
    /// Outputs.
    pub outputs: Option<Value>,
    /// Extra (`metadata`, `runtime`).
    pub extra: Option<Value>,
    /// Events.
    pub events: Option<Value>,
    /// Serialized model.
    pub serialized: Option<Value>,
    /// Tags.
    pub tags: Vec<String>,
    /// The dataset example.
    pub reference_example_id: Option<Uuid>,
    /// Token counts (sent, or derived from the outputs' usage).
    pub prompt_tokens: Option<i64>,
    /// See `prompt_tokens`.
    pub completion_tokens: Option<i64>,
    /// See `prompt_tokens`.
    pub total_tokens: Option<i64>,
    /// Costs as decimal strings.
    pub prompt_cost: Option<String>,
    /// See `prompt_cost`.
    pub completion_cost: Option<String>,
    /// See `prompt_cost`.
    pub total_cost: Option<String>,
    /// When the first token arrived.
    pub first_token_time: Option<Timestamp>,
    /// Thread id from the metadata (`thread_id`, `session_id` or `conversation_id`).
    pub thread_id: Option<String>,
    /// The store-wide change sequence of this run's last change.
    pub seq: super::ChangeSeq,
    /// When the store first saw it.
    pub inserted_at: Timestamp,
    /// When it last changed.
    pub modified_at: Timestamp,
}

impl RunRecord {
    /// A new run from its first write. `id` and `session_id` are resolved by
    /// the caller; `seq` is set when it is stored.
    pub fn create(id: RunId, session_id: SessionId, w: RunWrite, now: Timestamp) -> Result<Self, InvalidRun> {
        let run = id.to_string();
        let missing = |field| InvalidRun::Missing { run: run.clone(), field };
        let name = w.name.clone().filter(|n| !n.is_empty()).ok_or_else(|| missing("name"))?;
        let run_type = w.run_type.ok_or_else(|| missing("run_type"))?;
        let start_time = w.start_time.ok_or_else(|| missing("start_time"))?;
        let trace_id = w.trace_id.unwrap_or(id);
        let dotted_order = match &w.dotted_order {
            Some(d) => d.clone(),
            None if w.parent_run_id.is_none() => dotted_segment(start_time, id),
            None => return Err(missing("dotted_order")),
        };
        let mut rec = RunRecord {
            id,
            session_id,
            trace_id,
            parent_run_id: w.parent_run_id,
            dotted_order,
            name,
            run_type,
            start_time,
            end_time: None,
            error: None,
            inputs: None,
            outputs: None,
            extra: None,
            events: None,
            serialized: None,
            tags: Vec::new(),
            reference_example_id: None,
            prompt_tokens: None,
            completion_tokens: None,
            total_tokens: None,
            prompt_cost: None,
            completion_cost: None,
            total_cost: None,
            first_token_time: None,
            thread_id: None,
            seq: super::ChangeSeq::START,
            inserted_at: now,
            modified_at: now,
        };
        rec.apply(w, true)?;
        rec.validate_tree()?;
        Ok(rec)
    }

    /// Merges a later post: fills only the fields this run lacks. Returns
    /// whether anything changed (a retried post changes nothing).
    pub fn fill(&mut self, w: RunWrite, now: Timestamp) -> Result<bool, InvalidRun> {
        let before = self.clone();
        self.apply(w, false)?;
        Ok(self.touch_if_changed(&before, now))
    }

    /// Merges a patch: overwrites the fields it carries. Returns whether
    /// anything changed.
    pub fn patch(&mut self, w: RunWrite, now: Timestamp) -> Result<bool, InvalidRun> {
        let before = self.clone();
        self.apply(w, true)?;
        Ok(self.touch_if_changed(&before, now))
    }

    fn touch_if_changed(&mut self, before: &RunRecord, now: Timestamp) -> bool {
        if self == before {
            return false;
        }
        self.modified_at = now;
        true
    }

    /// Copies the write's fields in: all of them (`overwrite`) or only those
    /// still empty here. Identity fields (id, trace, tree position, project)
    /// never change after creation.
    fn apply(&mut self, w: RunWrite, overwrite: bool) -> Result<(), InvalidRun> {
        fn set<T>(slot: &mut Option<T>, v: Option<T>, overwrite: bool) {
            if v.is_some() && (overwrite || slot.is_none()) {
                *slot = v;
            }
        }
        let run = self.id.to_string();
        for (field, value) in [("inputs", &w.inputs), ("outputs", &w.outputs), ("extra", &w.extra)] {
            if let Some(v) = value
                && !v.is_object()
                && !v.is_null()
            {
                return Err(InvalidRun::Invalid { run, field, problem: "must be a JSON object".into() });
            }
        }
        if overwrite {
            if let Some(n) = w.name.filter(|n| !n.is_empty()) {
                self.name = n;
            }
            if let Some(t) = w.run_type {
                self.run_type = t;
            }
        }
        if let Some(end) = w.end_time
            && end < self.start_time
        {
            return Err(InvalidRun::Invalid {
                run,
                field: "end_time",
                problem: format!("({end}) is before start_time ({})", self.start_time),
            });
        }
        set(&mut self.end_time, w.end_time, overwrite);
        set(&mut self.error, w.error.filter(|e| !e.is_empty()), overwrite);
        set(&mut self.inputs, w.inputs.filter(|v| !v.is_null()), overwrite);
        set(&mut self.outputs, w.outputs.filter(|v| !v.is_null()), overwrite);
        set(&mut self.extra, w.extra.filter(|v| !v.is_null()), overwrite);
        set(&mut self.events, w.events.map(Value::Array), overwrite);
        set(&mut self.serialized, w.serialized.filter(|v| !v.is_null()), overwrite);
        set(&mut self.reference_example_id, w.reference_example_id, overwrite);
        set(&mut self.first_token_time, w.first_token_time, overwrite);
        if let Some(tags) = w.tags
            && (overwrite || self.tags.is_empty())
        {
            self.tags = tags;
        }
        set(&mut self.prompt_tokens, w.prompt_tokens, overwrite);
        set(&mut self.completion_tokens, w.completion_tokens, overwrite);
        set(&mut self.total_tokens, w.total_tokens, overwrite);
        set(&mut self.prompt_cost, decimal(&run, "prompt_cost", w.prompt_cost)?, overwrite);
        set(&mut self.completion_cost, decimal(&run, "completion_cost", w.completion_cost)?, overwrite);
        set(&mut self.total_cost, decimal(&run, "total_cost", w.total_cost)?, overwrite);
        self.derive();
        Ok(())
    }

    /// Fields LangSmith derives from the payload: token usage from the
    /// outputs, the thread id from the metadata.
    fn derive(&mut self) {
        let usage = usage(self.outputs.as_ref(), self.extra.as_ref());
        if self.prompt_tokens.is_none() {
            self.prompt_tokens = usage.0;
        }
        if self.completion_tokens.is_none() {
            self.completion_tokens = usage.1;
        }
        if self.total_tokens.is_none() {
            self.total_tokens = usage.2.or(match (self.prompt_tokens, self.completion_tokens) {
                (Some(p), Some(c)) => Some(p + c),
                _ => None,
            });
        }
        self.thread_id = self.metadata().and_then(|m| {
            ["thread_id", "session_id", "conversation_id"]
                .iter()
                .find_map(|k| m.get(*k).and_then(Value::as_str))
                .map(str::to_string)
        });
    }

    fn validate_tree(&self) -> Result<(), InvalidRun> {
        let run = self.id.to_string();
        let segments: Vec<&str> = self.dotted_order.split('.').collect();
        let bad = |problem: String| InvalidRun::Invalid { run: run.clone(), field: "dotted_order", problem };
        let mut ids = Vec::with_capacity(segments.len());
        for seg in &segments {
            // YYYYMMDDTHHMMSSffffffZ + uuid (36)
            let id =
                seg.get(22..).and_then(|s| s.parse::<RunId>().ok()).filter(|_| seg.as_bytes().get(21) == Some(&b'Z'));
            ids.push(id.ok_or_else(|| bad(format!("segment {seg:?} is not <YYYYMMDDTHHMMSSffffff>Z<uuid>")))?);
        }
        if ids.last() != Some(&self.id) {
            return Err(bad("must end with this run's id".into()));
        }
        if ids.first() != Some(&self.trace_id) {
            return Err(bad(format!("must start with the trace id {}", self.trace_id)));
        }
        let parent = ids.len().checked_sub(2).map(|i| ids[i]);
        if parent != self.parent_run_id {
            return Err(bad("does not agree with parent_run_id".into()));
        }
        Ok(())
    }

    /// `success`, `error` or `pending`, as LangSmith derives it.
    pub fn status(&self) -> &'static str {
        if self.error.is_some() {
            "error"
        } else if self.end_time.is_some() {
            "success"
        } else {
            "pending"
        }
    }

    /// Whether this run is the root of its trace.
    pub fn is_root(&self) -> bool {
        self.parent_run_id.is_none()
    }

    /// Seconds from start to end, when finished.
    pub fn latency(&self) -> Option<f64> {
        self.end_time.map(|end| self.start_time.seconds_until(&end))
    }

    /// The ancestors' ids, root first, read from the dotted order.
    pub fn parent_run_ids(&self) -> Vec<RunId> {
        let segments: Vec<&str> = self.dotted_order.split('.').collect();
        segments[..segments.len().saturating_sub(1)].iter().filter_map(|s| s.get(22..)?.parse().ok()).collect()
    }

    /// `extra.metadata`, when it is an object.
    pub fn metadata(&self) -> Option<&serde_json::Map<String, Value>> {
        self.extra.as_ref()?.get("metadata")?.as_object()
    }
}

/// The dotted-order segment of a run: `YYYYMMDDTHHMMSSffffffZ<uuid>`.
pub fn dotted_segment(start: Timestamp, id: RunId) -> String {
    format!("{}Z{id}", start.as_datetime().format("%Y%m%dT%H%M%S%6f"))
}

fn decimal(run: &str, field: &'static str, v: Option<Value>) -> Result<Option<String>, InvalidRun> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(Value::String(s)) if s.trim().parse::<f64>().is_ok_and(f64::is_finite) => Ok(Some(s.trim().to_string())),
        Some(other) => Err(InvalidRun::Invalid {
            run: run.into(),
            field,
            problem: format!("must be a decimal number, got {other}"),
        }),
    }
}

/// Token usage as LangChain and the OpenAI wrappers report it: `(prompt,
/// completion, total)`.
fn usage(outputs: Option<&Value>, extra: Option<&Value>) -> (Option<i64>, Option<i64>, Option<i64>) {
    let candidates = [
        outputs.and_then(|o| o.get("usage_metadata")),
        extra.and_then(|e| e.pointer("/metadata/usage_metadata")),
        outputs.and_then(|o| o.pointer("/llm_output/token_usage")),
        outputs.and_then(|o| o.get("usage")),
    ];
    for u in candidates.into_iter().flatten() {
        let get = |keys: &[&str]| keys.iter().find_map(|k| u.get(*k).and_then(Value::as_i64));
        let prompt = get(&["input_tokens", "prompt_tokens"]);
        let completion = get(&["output_tokens", "completion_tokens"]);
        let total = get(&["total_tokens"]);
        if prompt.is_some() || completion.is_some() || total.is_some() {
            return (prompt, completion, total);
        }
    }
    (None, None, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(id: RunId) -> RunWrite {
        RunWrite {
            id: Some(id),
            name: Some("chain".into()),
            run_type: Some(RunType::Chain),
            start_time: Some("2026-11-22T10:00:00Z".parse().unwrap()),
            ..RunWrite::default()
        }
    }

    #[test]
    fn a_root_run_gets_its_trace_and_dotted_order() {
        let id = RunId::new_v7();
        let r = RunRecord::create(id, SessionId::new_v4(), write(id), Timestamp::now()).unwrap();
        assert_eq!(r.trace_id, id);
        assert_eq!(r.dotted_order, format!("20261122T100000000000Z{id}"));
        assert!(r.is_root() && r.parent_run_ids().is_empty());
        assert_eq!(r.status(), "pending");
    }

    #[test]
    fn repeated_posts_change_nothing_and_patches_overwrite() {
        let id = RunId::new_v7();
        let now = Timestamp::now();
        let mut r = RunRecord::create(id, SessionId::new_v4(), write(id), now).unwrap();
        assert!(!r.fill(write(id), now).unwrap());
        let end = RunWrite {
            end_time: Some("2026-11-22T10:00:02Z".parse().unwrap()),
            outputs: Some(serde_json::json!({"usage_metadata": {"input_tokens": 3, "output_tokens": 4}})),
            error: Some("boom".into()),
            ..RunWrite::default()
        };
        assert!(r.patch(end, now).unwrap());
        assert_eq!((r.status(), r.latency()), ("error", Some(2.0)));
        assert_eq!((r.prompt_tokens, r.completion_tokens, r.total_tokens), (Some(3), Some(4), Some(7)));
    }

    #[test]
    fn rejects_what_cannot_be_a_run() {
        let id = RunId::new_v7();
        let mut w = write(id);
        w.name = None;
        assert!(matches!(
            RunRecord::create(id, SessionId::new_v4(), w, Timestamp::now()),
            Err(InvalidRun::Missing { field: "name", .. })
        ));
        let mut w = write(id);
        w.dotted_order = Some("garbage".into());
        assert!(matches!(
            RunRecord::create(id, SessionId::new_v4(), w, Timestamp::now()),
            Err(InvalidRun::Invalid { field: "dotted_order", .. })
        ));
        let mut w = write(id);
        w.inputs = Some(serde_json::json!([1, 2]));
        assert!(RunRecord::create(id, SessionId::new_v4(), w, Timestamp::now()).is_err());
        let mut w = write(id);
        w.end_time = Some("2026-11-21T10:00:00Z".parse().unwrap());
        assert!(RunRecord::create(id, SessionId::new_v4(), w, Timestamp::now()).is_err());
    }

    #[test]
    fn child_runs_carry_their_ancestry() {
        let root = RunId::new_v7();
        let child = RunId::new_v7();
        let start: Timestamp = "2026-11-22T10:00:00Z".parse().unwrap();
        let mut w = write(child);
        w.trace_id = Some(root);
        w.parent_run_id = Some(root);
        w.dotted_order = Some(format!("{}.{}", dotted_segment(start, root), dotted_segment(start, child)));
        let r = RunRecord::create(child, SessionId::new_v4(), w, Timestamp::now()).unwrap();
        assert_eq!(r.parent_run_ids(), vec![root]);
        assert!(!r.is_root());
    }
}
