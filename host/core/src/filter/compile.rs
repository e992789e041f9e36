//! From the untyped syntax tree to a typed, validated expression.
//!
//! Every field name, operator and literal is checked here, once: an unknown
//! field, an operator that does not apply to a field's kind, a malformed
//! timestamp, duration or UUID is an error naming it and its position. The
//! result is evaluated per run without any of these checks.
//!
//! Key/value pairing: inside one conjunction, conditions on `metadata_key`
//! and `metadata_value` (likewise input, output and feedback) are grouped
//! and evaluated against the same entry, as LangSmith does. Within a group:
//! positive conditions (everything but `neq`) must all hold for one entry;
//! `neq(*_key, k)` means no entry has key k; `neq(*_value, v)` means, when the
//! group also has a positive key condition, that the matching entry's value
//! is not v, and otherwise that no entry has value v.

use super::FilterError;
use super::fields::{Family, Field, Kind, Part};
pub(crate) use super::like::Like;
use super::parser::{Lit, Node};
use crate::model::Timestamp;

/// A typed literal.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Val {
    Null,
    Bool(bool),
    Num(f64),
    Text(String),
    Uuid(uuid::Uuid),
    /// Microseconds since the epoch.
    Time(i64),
}

/// A test on one value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Test {
    Eq(Val),
    Ne(Val),
    Lt(Val),
    Le(Val),
    Gt(Val),
    Ge(Val),
    In(Vec<Val>),
    Like(Like),
    /// Case-insensitive substring (lowercase needle).
    Contains(String),
    /// `has(tags, x)`, `has(metadata, '{"k": v}')`.
    Has(HasArg),
    /// `exists(field)` or `exists(metadata, key)`.
    Exists(Option<String>),
}

/// What `has` looks for.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum HasArg {
    Text(String),
    Json(serde_json::Map<String, serde_json::Value>),
}

/// A condition on a key/value family member.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PairCond {
    pub(crate) part: Part,
    pub(crate) test: Test,
}

/// The key/value conditions of one family within one conjunction.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Group {
    pub(crate) family: Family,
    /// All must hold for one entry (none: no entry needed).
    pub(crate) entry: Vec<PairCond>,
    /// No entry may satisfy any of these.
    pub(crate) absent: Vec<PairCond>,
}

/// A typed expression.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Expr {
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Not(Box<Expr>),
    Cond(Field, Test),
    Group(Group),
    /// Full-text search over the run's text (lowercase needle).
    Search(String),
}

impl Expr {
    /// Whether evaluating this reads the run's feedback.
    pub(crate) fn reads_feedback(&self) -> bool {
        match self {
            Expr::And(parts) | Expr::Or(parts) => parts.iter().any(Expr::reads_feedback),
            Expr::Not(inner) => inner.reads_feedback(),
            Expr::Group(g) => g.family == Family::Feedback,
            Expr::Cond(..) | Expr::Search(_) => false,
        }
    }

    /// Whether evaluating this reads the run's inputs or outputs (the
    /// large fields a rule's window leaves out unless a filter needs them).
    pub(crate) fn reads_io(&self) -> bool {
        let io = |f: Family| matches!(f, Family::Input | Family::Output);
        match self {
            Expr::And(parts) | Expr::Or(parts) => parts.iter().any(Expr::reads_io),
            Expr::Not(inner) => inner.reads_io(),
            Expr::Group(g) => io(g.family),
            Expr::Cond(Field::Pair(family, _), _) => io(*family),
            Expr::Search(_) => true,
            Expr::Cond(..) => false,
        }
    }
}

/// A leaf before grouping.
enum Item {
    Plain(Expr),
    Pair { family: Family, part: Part, test: Test },
}

pub(super) fn compile(src: &str, node: &Node) -> Result<Expr, FilterError> {
    Ok(finish(vec![item(src, node)?]).pop().unwrap_or(Expr::And(Vec::new())))
}

/// Turns items of one conjunction into expressions, grouping pair leaves.
fn finish(items: Vec<Item>) -> Vec<Expr> {
    let mut out = Vec::new();
    let mut groups: Vec<(Family, Vec<(Part, Test)>)> = Vec::new();
    for it in items {
        match it {
            Item::Plain(e) => out.push(e),
            Item::Pair { family, part, test } => match groups.iter_mut().find(|(f, _)| *f == family) {
                Some((_, conds)) => conds.push((part, test)),
                None => groups.push((family, vec![(part, test)])),
            },
        }
    }
    for (family, conds) in groups {
        let positive_key = conds.iter().any(|(p, t)| *p == Part::Key && !matches!(t, Test::Ne(_)));
        let mut group = Group { family, entry: Vec::new(), absent: Vec::new() };
        for (part, test) in conds {
            match (part, test) {
                (Part::Key, Test::Ne(v)) => group.absent.push(PairCond { part, test: Test::Eq(v) }),
                (_, Test::Ne(v)) if !positive_key => group.absent.push(PairCond { part, test: Test::Eq(v) }),
                (_, test) => group.entry.push(PairCond { part, test }),
            }
        }
        out.push(Expr::Group(group));
    }
    out
}

fn item(src: &str, node: &Node) -> Result<Item, FilterError> {
    let err = |pos: usize, msg: String| FilterError::at(src, pos, msg);
    match node {
        Node::And(parts) => conj(src, parts),
        Node::Or(parts) => {
            Ok(Item::Plain(Expr::Or(parts.iter().map(|p| standalone(src, p)).collect::<Result<_, _>>()?)))
        }
        Node::Not(inner, _) => Ok(Item::Plain(Expr::Not(Box::new(standalone(src, inner)?)))),
        Node::Infix { field, field_pos, op, op_pos, value, value_pos } => {
            let f = field_named(src, field, *field_pos)?;
            let name = match *op {
                "=" | "==" => "eq",
                "!=" => "neq",
                "<" => "lt",
                "<=" => "lte",
                ">" => "gt",
                _ => "gte",
            };
            comparison(src, name, *op_pos, f, value, *value_pos)
        }
        Node::Call { name, pos, args } => call(src, name, *pos, args),
        Node::Name { name, pos } => {
            Err(err(*pos, format!("{name:?} is a field, not a condition; compare it, e.g. eq({name}, ...)")))
        }
        Node::Lit { pos, .. } | Node::List { pos, .. } => Err(err(*pos, "expected a condition, found a value".into())),
    }
}

fn standalone(src: &str, node: &Node) -> Result<Expr, FilterError> {
    let items = vec![item(src, node)?];
    let mut exprs = finish(items);
    Ok(if exprs.len() == 1 { exprs.remove(0) } else { Expr::And(exprs) })
}

/// A conjunction: nested conjunctions are flattened so their pair
/// conditions group together.
fn conj(src: &str, parts: &[Node]) -> Result<Item, FilterError> {
    let mut items = Vec::new();
    let mut stack: Vec<&Node> = parts.iter().rev().collect();
    while let Some(n) = stack.pop() {
        match n {
            Node::And(inner) => stack.extend(inner.iter().rev()),
            Node::Call { name, args, .. } if name.eq_ignore_ascii_case("and") => stack.extend(args.iter().rev()),
            other => items.push(item(src, other)?),
        }
    }
    let mut exprs = finish(items);
    Ok(Item::Plain(if exprs.len() == 1 { exprs.remove(0) } else { Expr::And(exprs) }))
}

fn field_named(src: &str, name: &str, pos: usize) -> Result<Field, FilterError> {
    Field::parse(name).ok_or_else(|| {
        let known: Vec<&str> = super::fields::FIELDS.iter().map(|(n, _)| *n).collect();
        FilterError::at(src, pos, format!("unknown field {name:?}; known fields: {}", known.join(", ")))
    })
}

fn field_arg(src: &str, fname: &str, pos: usize, arg: Option<&Node>) -> Result<(Field, usize), FilterError> {
    match arg {
        Some(Node::Name { name, pos }) => Ok((field_named(src, name, *pos)?, *pos)),
        Some(Node::Lit { pos, .. } | Node::List { pos, .. }) => {
            Err(FilterError::at(src, *pos, format!("the first argument of {fname}(...) must be a field name")))
        }
        Some(_) => Err(FilterError::at(src, pos, format!("the first argument of {fname}(...) must be a field name"))),
        None => Err(FilterError::at(src, pos, format!("{fname}(...) needs a field as its first argument"))),
    }
}

fn lit_arg<'a>(src: &str, fname: &str, pos: usize, arg: Option<&'a Node>) -> Result<(&'a Lit, usize), FilterError> {
    match arg {
        Some(Node::Lit { lit, pos }) => Ok((lit, *pos)),
        Some(Node::Name { name, pos }) => Err(FilterError::at(
            src,
            *pos,
            format!("expected a value as the second argument of {fname}(...), found the name {name}; quote strings"),
        )),
        _ => Err(FilterError::at(src, pos, format!("{fname}(...) needs a value as its second argument"))),
    }
}

fn arity(src: &str, fname: &str, pos: usize, args: &[Node], min: usize, max: usize) -> Result<(), FilterError> {
    if args.len() < min || args.len() > max {
        let want = if min == max { format!("{min}") } else { format!("{min} to {max}") };
        return Err(FilterError::at(src, pos, format!("{fname}(...) takes {want} arguments, got {}", args.len())));
    }
    Ok(())
}

fn call(src: &str, name: &str, pos: usize, args: &[Node]) -> Result<Item, FilterError> {
    let lower = name.to_ascii_lowercase();
    match lower.as_str() {
        "and" => {
            if args.is_empty() {
                return Err(FilterError::at(src, pos, "and(...) needs at least one condition".into()));
            }
            conj(src, args)
        }
        "or" => {
            if args.is_empty() {
                return Err(FilterError::at(src, pos, "or(...) needs at least one condition".into()));
            }
            Ok(Item::Plain(Expr::Or(args.iter().map(|a| standalone(src, a)).collect::<Result<_, _>>()?)))
        }
        "not" => {
            arity(src, "not", pos, args, 1, 1)?;
            Ok(Item::Plain(Expr::Not(Box::new(standalone(src, &args[0])?))))
        }
        "eq" | "neq" | "gt" | "gte" | "lt" | "lte" => {
            arity(src, &lower, pos, args, 2, 2)?;
            let (field, _) = field_arg(src, &lower, pos, args.first())?;
            let (lit, lpos) = lit_arg(src, &lower, pos, args.get(1))?;
            comparison(src, &lower, pos, field, lit, lpos)
        }
        "in" => {
            arity(src, "in", pos, args, 2, 2)?;
            let (field, _) = field_arg(src, "in", pos, args.first())?;
            let Some(Node::List { items, .. }) = args.get(1) else {
                return Err(FilterError::at(
                    src,
                    pos,
                    "in(...) needs a list such as [\"a\", \"b\"] as its second argument".into(),
                ));
            };
            let vals = items.iter().map(|(l, p)| value(src, "in", field, l, *p)).collect::<Result<Vec<_>, _>>()?;
            if matches!(field.kind(), Kind::Blob) {
                return Err(op_error(src, pos, "in", field));
            }
            Ok(leaf(field, Test::In(vals)))
        }
        "like" => {
            arity(src, "like", pos, args, 2, 2)?;
            let (field, _) = field_arg(src, "like", pos, args.first())?;
            let (lit, lpos) = lit_arg(src, "like", pos, args.get(1))?;
            let Lit::Str(pattern) = lit else {
                return Err(FilterError::at(src, lpos, "like(...) needs a quoted pattern such as \"%text%\"".into()));
            };
            if !matches!(field.kind(), Kind::Text | Kind::Key | Kind::Any | Kind::Word(_) | Kind::Uuid) {
                return Err(op_error(src, pos, "like", field));
            }
            Ok(leaf(field, Test::Like(Like::compile(pattern))))
        }
        "has" => {
            arity(src, "has", pos, args, 2, 2)?;
            let (field, _) = field_arg(src, "has", pos, args.first())?;
            let (lit, lpos) = lit_arg(src, "has", pos, args.get(1))?;
            let Lit::Str(s) = lit else {
                return Err(FilterError::at(src, lpos, "has(...) needs a quoted string".into()));
            };
            match field.kind() {
                Kind::Tags => Ok(leaf(field, Test::Has(HasArg::Text(s.clone())))),
                Kind::Key => Ok(leaf(field, Test::Eq(Val::Text(s.clone())))),
                Kind::Blob => match serde_json::from_str::<serde_json::Value>(s) {
                    Ok(serde_json::Value::Object(map)) => Ok(leaf(field, Test::Has(HasArg::Json(map)))),
                    _ => Err(FilterError::at(
                        src,
                        lpos,
                        "has(metadata, ...) needs a JSON object such as '{\"env\": \"prod\"}'".into(),
                    )),
                },
                _ => Err(op_error(src, pos, "has", field)),
            }
        }
        "exists" => {
            arity(src, "exists", pos, args, 1, 2)?;
            let (field, _) = field_arg(src, "exists", pos, args.first())?;
            let key = match args.get(1) {
                None => None,
                Some(_) => match lit_arg(src, "exists", pos, args.get(1))? {
                    (Lit::Str(k), _) if matches!(field.kind(), Kind::Blob) => Some(k.clone()),
                    (_, lpos) => {
                        return Err(FilterError::at(
                            src,
                            lpos,
                            "exists(metadata, \"key\") takes a quoted key; other fields take none".into(),
                        ));
                    }
                },
            };
            Ok(leaf(field, Test::Exists(key)))
        }
        "search" => {
            arity(src, "search", pos, args, 1, 2)?;
            if args.len() == 1 {
                let (lit, lpos) = lit_arg(src, "search", pos, args.first())
                    .map_err(|_| FilterError::at(src, pos, "search(...) needs a quoted text".into()))?;
                let Lit::Str(text) = lit else {
                    return Err(FilterError::at(src, lpos, "search(...) needs a quoted text".into()));
                };
                return Ok(Item::Plain(Expr::Search(text.to_lowercase())));
            }
            let (field, _) = field_arg(src, "search", pos, args.first())?;
            let (lit, lpos) = lit_arg(src, "search", pos, args.get(1))?;
            let Lit::Str(text) = lit else {
                return Err(FilterError::at(src, lpos, "search(...) needs a quoted text".into()));
            };
            if matches!(field.kind(), Kind::Bool | Kind::Number | Kind::Time | Kind::Seconds) {
                return Err(op_error(src, pos, "search", field));
            }
            Ok(leaf(field, Test::Contains(text.to_lowercase())))
        }
        _ => Err(FilterError::at(
            src,
            pos,
            format!(
                "unknown function {name:?}; expected eq, neq, gt, gte, lt, lte, has, search, in, like, exists, and, or, not"
            ),
        )),
    }
}

fn leaf(field: Field, test: Test) -> Item {
    match field {
        Field::Pair(family, part) => Item::Pair { family, part, test },
        _ => Item::Plain(Expr::Cond(field, test)),
    }
}

fn op_error(src: &str, pos: usize, op: &str, field: Field) -> FilterError {
    FilterError::at(src, pos, format!("operator {op} does not apply to field {} ({})", field.name(), field.describe()))
}

fn comparison(src: &str, op: &str, pos: usize, field: Field, lit: &Lit, lpos: usize) -> Result<Item, FilterError> {
    let ordered = matches!(op, "gt" | "gte" | "lt" | "lte");
    let kind = field.kind();
    if ordered && !matches!(kind, Kind::Time | Kind::Seconds | Kind::Number | Kind::Any) {
        return Err(op_error(src, pos, op, field));
    }
    if matches!(kind, Kind::Blob) {
        return Err(op_error(src, pos, op, field));
    }
    let v = value(src, op, field, lit, lpos)?;
    if ordered && v == Val::Null {
        return Err(FilterError::at(src, lpos, format!("{op}(...) cannot compare with null")));
    }
    let test = match op {
        "eq" => Test::Eq(v),
        "neq" => Test::Ne(v),
        "gt" => Test::Gt(v),
        "gte" => Test::Ge(v),
        "lt" => Test::Lt(v),
        _ => Test::Le(v),
    };
    // Equality on tags means membership, as in LangSmith's UI.
    let test = match (kind, test) {
        (Kind::Tags, Test::Eq(Val::Text(t))) => Test::Has(HasArg::Text(t)),
        (Kind::Tags, Test::Ne(Val::Text(t))) => {
            return Ok(Item::Plain(Expr::Not(Box::new(Expr::Cond(field, Test::Has(HasArg::Text(t)))))));
        }
        (_, t) => t,
    };
    Ok(leaf(field, test))
}

/// Converts a literal to the field's type, or explains why it cannot be.
fn value(src: &str, op: &str, field: Field, lit: &Lit, pos: usize) -> Result<Val, FilterError> {
    let bad = |want: &str| {
        FilterError::at(src, pos, format!("{op}(...) on field {} needs {want}, found {}", field.name(), show(lit)))
    };
    if *lit == Lit::Null {
        return if field.nullable() || matches!(field.kind(), Kind::Any) {
            Ok(Val::Null)
        } else {
            Err(FilterError::at(src, pos, format!("field {} is never null", field.name())))
        };
    }
    match (field.kind(), lit) {
        (Kind::Uuid, Lit::Str(s)) => match uuid::Uuid::parse_str(s) {
            Ok(u) => Ok(Val::Uuid(u)),
            Err(_) => Err(FilterError::at(src, pos, format!("{s:?} is not a valid UUID (field {})", field.name()))),
        },
        (Kind::Text | Kind::Key | Kind::Tags, Lit::Str(s)) => Ok(Val::Text(s.clone())),
        (Kind::Word(words), Lit::Str(s)) => {
            if words.contains(&s.as_str()) {
                Ok(Val::Text(s.clone()))
            } else {
                Err(FilterError::at(
                    src,
                    pos,
                    format!("{s:?} is not a valid {}; expected one of {}", field.name(), words.join(", ")),
                ))
            }
        }
        (Kind::Time, Lit::Str(s)) => s.parse::<Timestamp>().map(|t| Val::Time(t.micros())).map_err(|_| {
            FilterError::at(
                src,
                pos,
                format!("malformed datetime {s:?}; expected ISO-8601 such as \"2023-07-15T12:34:56Z\""),
            )
        }),
        (Kind::Seconds, Lit::Num(n, _)) => Ok(Val::Num(*n)),
        (Kind::Seconds, Lit::Str(s)) => duration(s).map(Val::Num).ok_or_else(|| {
            FilterError::at(
                src,
                pos,
                format!("malformed duration {s:?}; expected a number with ms, s, m or h, such as \"5s\""),
            )
        }),
        (Kind::Number, Lit::Num(n, _)) => Ok(Val::Num(*n)),
        (Kind::Bool, Lit::Bool(b)) => Ok(Val::Bool(*b)),
        (Kind::Any, Lit::Str(s)) => Ok(Val::Text(s.clone())),
        (Kind::Any, Lit::Num(n, _)) => Ok(Val::Num(*n)),
        (Kind::Any, Lit::Bool(b)) => Ok(Val::Bool(*b)),
        _ => Err(bad(&field.describe())),
    }
}

fn show(lit: &Lit) -> String {
    match lit {
        Lit::Str(s) => format!("{s:?}"),
        Lit::Num(n, _) => n.to_string(),
        Lit::Bool(b) => b.to_string(),
        Lit::Null => "null".into(),
    }
}

/// "5s", "250ms", "2m", "1h", "1.5s" -> seconds.
pub(crate) fn duration(s: &str) -> Option<f64> {
    let s = s.trim();
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().ok()?;
    let factor = match unit.trim() {
        "ms" => 0.001,
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        "d" => 86400.0,
        _ => return None,
    };
    Some(n * factor).filter(|v| v.is_finite())
}
