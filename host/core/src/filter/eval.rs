//! Evaluating a compiled filter against one run and its feedback.
//!
//! Nothing here allocates on the common paths: scalar fields are compared
//! in place, and key/value families are walked with a reused thread-local
//! path buffer instead of being flattened into a map.

use std::cell::RefCell;

use serde_json::Value;

use super::compile::{Expr, Group, HasArg, PairCond, Test, Val};
use super::fields::{Family, Field, Part};
use super::like::contains_ci;
use crate::model::{Feedback, RunRecord};

/// A run field's value, borrowed.
#[derive(Debug, Clone, Copy)]
enum Scalar<'a> {
    Null,
    Bool(bool),
    Num(f64),
    Text(&'a str),
    Uuid(uuid::Uuid),
    Time(i64),
}

pub(crate) fn eval(e: &Expr, run: &RunRecord, feedback: &[Feedback]) -> bool {
    match e {
        Expr::And(parts) => parts.iter().all(|p| eval(p, run, feedback)),
        Expr::Or(parts) => parts.iter().any(|p| eval(p, run, feedback)),
        Expr::Not(inner) => !eval(inner, run, feedback),
        Expr::Cond(field, test) => cond(*field, test, run),
        Expr::Group(g) => group(g, run, feedback),
        Expr::Search(needle) => search(run, needle),
    }
}

fn opt_text(v: &Option<String>) -> Scalar<'_> {
    v.as_deref().map_or(Scalar::Null, Scalar::Text)
}

fn opt_num(v: &Option<String>) -> Scalar<'static> {
    v.as_deref().and_then(|s| s.parse::<f64>().ok()).map_or(Scalar::Null, Scalar::Num)
}

fn scalar(field: Field, run: &RunRecord) -> Scalar<'_> {
    match field {
        Field::Id => Scalar::Uuid(run.id.0),
        Field::TraceId => Scalar::Uuid(run.trace_id.0),
        Field::ParentRunId => run.parent_run_id.map_or(Scalar::Null, |p| Scalar::Uuid(p.0)),
        Field::SessionId => Scalar::Uuid(run.session_id.0),
        Field::ReferenceExampleId => run.reference_example_id.map_or(Scalar::Null, Scalar::Uuid),
        Field::Name => Scalar::Text(&run.name),
        Field::Error => opt_text(&run.error),
        Field::ThreadId => opt_text(&run.thread_id),
        Field::RunType => Scalar::Text(run.run_type.as_str()),
        Field::Status => Scalar::Text(run.status()),
        Field::StartTime => Scalar::Time(run.start_time.micros()),
        Field::EndTime => run.end_time.map_or(Scalar::Null, |t| Scalar::Time(t.micros())),
        Field::FirstTokenTime => run.first_token_time.map_or(Scalar::Null, |t| Scalar::Time(t.micros())),
        Field::Latency => run.latency().map_or(Scalar::Null, Scalar::Num),
        Field::TotalTokens => Scalar::Num(run.total_tokens.unwrap_or(0) as f64),
        Field::PromptTokens => Scalar::Num(run.prompt_tokens.unwrap_or(0) as f64),
        Field::CompletionTokens => Scalar::Num(run.completion_tokens.unwrap_or(0) as f64),
        Field::TotalCost => opt_num(&run.total_cost),
        Field::PromptCost => opt_num(&run.prompt_cost),
        Field::CompletionCost => opt_num(&run.completion_cost),
        Field::IsRoot => Scalar::Bool(run.is_root()),
        Field::ExecutionOrder => Scalar::Num(1.0),
        // Not scalars; handled by their callers.
        Field::Tags | Field::Metadata | Field::Pair(..) => Scalar::Null,
    }
}

fn cond(field: Field, test: &Test, run: &RunRecord) -> bool {
    match (field, test) {
        (Field::Tags, Test::Has(HasArg::Text(t))) => run.tags.iter().any(|x| x == t),
        (Field::Tags, Test::In(vals)) => vals.iter().any(|v| matches!(v, Val::Text(t) if run.tags.contains(t))),
        (Field::Tags, Test::Contains(n)) => run.tags.iter().any(|x| contains_ci(x, n)),
        (Field::Tags, Test::Exists(_)) => !run.tags.is_empty(),
        (Field::Tags, Test::Eq(Val::Null)) => run.tags.is_empty(),
        (Field::Tags, _) => false,
        (Field::Metadata, Test::Has(HasArg::Json(want))) => {
            run.metadata().is_some_and(|m| want.iter().all(|(k, v)| m.get(k) == Some(v)))
        }
        (Field::Metadata, Test::Exists(Some(key))) => run.metadata().is_some_and(|m| lookup(m, key).is_some()),
        (Field::Metadata, Test::Exists(None)) => run.metadata().is_some_and(|m| !m.is_empty()),
        (Field::Metadata, Test::Contains(n)) => {
            run.extra.as_ref().and_then(|e| e.get("metadata")).is_some_and(|m| json_contains(m, n))
        }
        (Field::Metadata, _) => false,
        (field, test) => scalar_test(scalar(field, run), test),
    }
}

fn lookup<'a>(m: &'a serde_json::Map<String, Value>, dotted: &str) -> Option<&'a Value> {
    if let Some(v) = m.get(dotted) {
        return Some(v);
    }
    let mut parts = dotted.split('.');
    let mut cur = m.get(parts.next()?)?;
    for p in parts {
        cur = cur.get(p)?;
    }
    Some(cur)
}

fn scalar_eq(s: Scalar<'_>, v: &Val) -> bool {
    match (s, v) {
        (Scalar::Null, Val::Null) => true,
        (Scalar::Bool(a), Val::Bool(b)) => a == *b,
        (Scalar::Num(a), Val::Num(b)) => a == *b,
        (Scalar::Text(a), Val::Text(b)) => a == b,
        (Scalar::Uuid(a), Val::Uuid(b)) => a == *b,
        (Scalar::Time(a), Val::Time(b)) => a == *b,
        _ => false,
    }
}

fn scalar_cmp(s: Scalar<'_>, v: &Val) -> Option<std::cmp::Ordering> {
    match (s, v) {
        (Scalar::Num(a), Val::Num(b)) => a.partial_cmp(b),
        (Scalar::Time(a), Val::Time(b)) => Some(a.cmp(b)),
        (Scalar::Text(a), Val::Text(b)) => Some(a.cmp(b.as_str())),
        _ => None,
    }
}

fn scalar_test(s: Scalar<'_>, test: &Test) -> bool {
    use std::cmp::Ordering::{Equal, Greater, Less};
    match test {
        Test::Eq(v) => scalar_eq(s, v),
        Test::Ne(v) => !scalar_eq(s, v),
        Test::Lt(v) => scalar_cmp(s, v) == Some(Less),
        Test::Le(v) => matches!(scalar_cmp(s, v), Some(Less | Equal)),
        Test::Gt(v) => scalar_cmp(s, v) == Some(Greater),
        Test::Ge(v) => matches!(scalar_cmp(s, v), Some(Greater | Equal)),
        Test::In(vals) => vals.iter().any(|v| scalar_eq(s, v)),
        Test::Like(p) => match s {
            Scalar::Text(t) => p.matches(t),
            Scalar::Uuid(u) => p.matches(u.hyphenated().encode_lower(&mut uuid::Uuid::encode_buffer())),
            _ => false,
        },
        Test::Contains(n) => match s {
            Scalar::Text(t) => contains_ci(t, n),
            Scalar::Uuid(u) => contains_ci(u.hyphenated().encode_lower(&mut uuid::Uuid::encode_buffer()), n),
            _ => false,
        },
        Test::Exists(_) => !matches!(s, Scalar::Null),
        Test::Has(_) => false,
    }
}

/// A value's test for key/value families: JSON values keep their type
/// (`true` matches the boolean, not the string "true").
fn json_test(v: Option<&Value>, test: &Test) -> bool {
    let s = match v {
        None | Some(Value::Null) => Scalar::Null,
        Some(Value::Bool(b)) => Scalar::Bool(*b),
        Some(Value::Number(n)) => n.as_f64().map_or(Scalar::Null, Scalar::Num),
        Some(Value::String(t)) => Scalar::Text(t),
        Some(other @ (Value::Array(_) | Value::Object(_))) => {
            return match test {
                Test::Contains(n) => json_contains(other, n),
                Test::Exists(_) => true,
                _ => false,
            };
        }
    };
    scalar_test(s, test)
}

fn key_test(key: &str, test: &Test) -> bool {
    scalar_test(Scalar::Text(key), test)
}

thread_local! {
    /// The dotted-path buffer, reused across evaluations on this thread.
    static PATH: RefCell<String> = RefCell::new(String::with_capacity(128));
}

/// Calls `f(path, leaf)` for each leaf under `v`, keys joined by dots and
/// array elements sharing their array's key; stops when `f` returns true.
fn walk(v: &Value, path: &mut String, f: &mut dyn FnMut(&str, &Value) -> bool) -> bool {
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(k);
                let stop = walk(child, path, f);
                path.truncate(len);
                if stop {
                    return true;
                }
            }
            false
        }
        Value::Array(items) => items.iter().any(|item| walk(item, path, f)),
        leaf => f(path, leaf),
    }
}

fn pair_ok(c: &PairCond, key: &str, value: Option<&Value>, score: Option<f64>) -> bool {
    match c.part {
        Part::Key => key_test(key, &c.test),
        Part::Value => json_test(value, &c.test),
        Part::Score => scalar_test(score.map_or(Scalar::Null, Scalar::Num), &c.test),
    }
}

fn group(g: &Group, run: &RunRecord, feedback: &[Feedback]) -> bool {
    let mut found = g.entry.is_empty();
    let mut violated = false;
    let mut visit = |key: &str, value: Option<&Value>, score: Option<f64>| -> bool {
        if !found && g.entry.iter().all(|c| pair_ok(c, key, value, score)) {
            found = true;
        }
        if g.absent.iter().any(|c| pair_ok(c, key, value, score)) {
            violated = true;
        }
        violated || (found && g.absent.is_empty())
    };
    match g.family {
        Family::Feedback => {
            for f in feedback {
                if visit(&f.key, f.value.as_ref(), f.score) {
                    break;
                }
            }
        }
        family => {
            let root = match family {
                Family::Metadata => run.extra.as_ref().and_then(|e| e.get("metadata")),
                Family::Input => run.inputs.as_ref(),
                _ => run.outputs.as_ref(),
            };
            if let Some(root) = root {
                PATH.with(|p| {
                    let mut path = p.borrow_mut();
                    path.clear();
                    walk(root, &mut path, &mut |k, v| visit(k, Some(v), None));
                });
            }
        }
    }
    found && !violated
}

fn search(run: &RunRecord, needle: &str) -> bool {
    contains_ci(&run.name, needle)
        || run.error.as_deref().is_some_and(|e| contains_ci(e, needle))
        || run.tags.iter().any(|t| contains_ci(t, needle))
        || run.inputs.as_ref().is_some_and(|v| json_contains(v, needle))
        || run.outputs.as_ref().is_some_and(|v| json_contains(v, needle))
        || run.extra.as_ref().and_then(|e| e.get("metadata")).is_some_and(|v| json_contains(v, needle))
}

fn json_contains(v: &Value, needle: &str) -> bool {
    match v {
        Value::String(s) => contains_ci(s, needle),
        Value::Array(items) => items.iter().any(|i| json_contains(i, needle)),
        Value::Object(map) => map.iter().any(|(k, v)| contains_ci(k, needle) || json_contains(v, needle)),
        _ => false,
    }
}
