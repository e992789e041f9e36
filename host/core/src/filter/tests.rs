//! The filter language against runs that must and must not match: every
//! example filter in LangSmith's docs, the key/value pairing forms, errors,
//! and random input that must never panic.

use serde_json::{Value, json};

use super::*;
use crate::model::{Feedback, FeedbackId, FeedbackSource, RunId, RunRecord, RunType, RunWrite, SessionId, Timestamp};

struct R {
    run: RunRecord,
    feedback: Vec<Feedback>,
}

fn run(f: impl FnOnce(&mut RunWrite)) -> R {
    let id = RunId::new_v7();
    let mut w = RunWrite {
        id: Some(id),
        name: Some("extractor".into()),
        run_type: Some(RunType::Chain),
        start_time: Some("2023-07-16T00:00:00Z".parse().unwrap()),
        end_time: Some("2023-07-16T00:00:01Z".parse().unwrap()),
        ..RunWrite::default()
    };
    f(&mut w);
    R { run: RunRecord::create(id, SessionId::new_v4(), w, Timestamp::now()).unwrap(), feedback: Vec::new() }
}

impl R {
    fn fb(mut self, key: &str, score: Option<f64>, value: Option<Value>) -> Self {
        self.feedback.push(Feedback {
            id: FeedbackId::new_v4(),
            run_id: Some(self.run.id),
            trace_id: None,
            session_id: None,
            key: key.into(),
            score,
            value,
            comment: None,
            correction: None,
            feedback_source: FeedbackSource::api(),
            extra: None,
            created_at: Timestamp::now(),
            modified_at: Timestamp::now(),
        });
        self
    }

    fn end(mut self, secs: f64) -> Self {
        let start = self.run.start_time.micros();
        self.run.end_time =
            chrono::DateTime::from_timestamp_micros(start + (secs * 1e6) as i64).map(Timestamp::from_datetime);
        self
    }
}

/// A child run of some root.
fn child() -> R {
    let root = RunId::new_v7();
    let start: Timestamp = "2023-07-16T00:00:00Z".parse().unwrap();
    run(|w| {
        let id = w.id.unwrap();
        w.trace_id = Some(root);
        w.parent_run_id = Some(root);
        w.dotted_order = Some(format!(
            "{}.{}",
            crate::model::run::dotted_segment(start, root),
            crate::model::run::dotted_segment(start, id)
        ));
    })
}

fn check(filter: &str, yes: &[R], no: &[R]) {
    let f = Filter::parse(filter).unwrap_or_else(|e| panic!("{filter}: {e}"));
    for (i, r) in yes.iter().enumerate() {
        assert!(f.matches(&r.run, &r.feedback), "{filter}: run #{i} should match");
    }
    for (i, r) in no.iter().enumerate() {
        assert!(!f.matches(&r.run, &r.feedback), "{filter}: run #{i} should not match");
    }
}

fn meta(m: Value) -> impl FnOnce(&mut RunWrite) {
    move |w| w.extra = Some(json!({"metadata": m}))
}

#[test]
fn doc_examples() {
    let tokens = |n: i64| move |w: &mut RunWrite| w.total_tokens = Some(n);
    check(
        r#"and(eq(run_type, "chain"), gt(latency, 10), gt(total_tokens, 5000))"#,
        &[run(tokens(6000)).end(11.0)],
        &[
            run(tokens(6000)).end(9.0),
            run(tokens(100)).end(11.0),
            run(|w| {
                w.run_type = Some(RunType::Llm);
                w.total_tokens = Some(6000)
            })
            .end(11.0),
        ],
    );
    check(r#"eq(name, "extractor")"#, &[run(|_| {})], &[run(|w| w.name = Some("other".into()))]);
    check(
        r#"and(eq(feedback_key, "user_score"), eq(feedback_score, 1))"#,
        &[run(|_| {}).fb("user_score", Some(1.0), None)],
        &[
            run(|_| {}).fb("user_score", Some(0.0), None),
            run(|_| {}).fb("other", Some(1.0), None).fb("user_score", Some(0.0), None),
            run(|_| {}),
        ],
    );
    check(
        r#"and(gt(start_time, "2023-07-15T12:34:56Z"), or(neq(error, null), and(eq(feedback_key, "Correctness"), eq(feedback_score, 0.0))))"#,
        &[run(|w| w.error = Some("boom".into())), run(|_| {}).fb("Correctness", Some(0.0), None)],
        &[
            run(|_| {}),
            run(|w| {
                w.error = Some("x".into());
                w.start_time = Some("2023-07-01T00:00:00Z".parse().unwrap());
                w.end_time = None
            }),
        ],
    );
    check(
        r#"and(or(has(tags, "experimental"), has(tags, "beta")), gt(latency, 2))"#,
        &[run(|w| w.tags = Some(vec!["beta".into()])).end(3.0)],
        &[run(|w| w.tags = Some(vec!["beta".into()])).end(1.0), run(|w| w.tags = Some(vec!["prod".into()])).end(3.0)],
    );
    check(
        r#"and(eq(feedback_key, "star_rating"), gt(feedback_score, 4))"#,
        &[run(|_| {}).fb("star_rating", Some(5.0), None)],
        &[run(|_| {}).fb("star_rating", Some(4.0), None)],
    );
    check(r#"gt(latency, "5s")"#, &[run(|_| {}).end(6.0)], &[run(|_| {}).end(4.0), run(|w| w.end_time = None)]);
    check(r#"lt(latency, "250ms")"#, &[run(|_| {}).end(0.1)], &[run(|_| {}).end(0.3)]);
    check(r#"neq(error, null)"#, &[run(|w| w.error = Some("e".into()))], &[run(|_| {})]);
    check(
        r#"search("image classification")"#,
        &[run(|w| w.inputs = Some(json!({"q": "An Image Classification task"})))],
        &[run(|w| w.inputs = Some(json!({"q": "image segmentation"})))],
    );
    check(r#"has(tags, "2aa1cf4")"#, &[run(|w| w.tags = Some(vec!["2aa1cf4".into()]))], &[run(|_| {})]);
    check(
        r#"and(in(metadata_key, ["session_id","conversation_id","thread_id"]), eq(metadata_value, "abc"))"#,
        &[run(meta(json!({"conversation_id": "abc"})))],
        &[run(meta(json!({"conversation_id": "xyz", "other": "abc"})))],
    );
    check(
        r#"and(eq(metadata_key, 'environment'), eq(metadata_value, 'production'))"#,
        &[run(meta(json!({"environment": "production"})))],
        &[run(meta(json!({"environment": "staging", "tier": "production"})))],
    );
    check(
        r#"and(eq(name, 'ChatOpenAI'), eq(metadata_key, 'conversation_id'), eq(metadata_value, '69b12c91-0000'))"#,
        &[run(|w| {
            w.name = Some("ChatOpenAI".into());
            w.extra = Some(json!({"metadata": {"conversation_id": "69b12c91-0000"}}))
        })],
        &[run(meta(json!({"conversation_id": "69b12c91-0000"})))],
    );
    check(
        r#"and(eq(run_type, "llm"), eq(name, "ChatOpenAI"), eq(input_key, "messages.content"), like(input_value, "%hello%"))"#,
        &[run(|w| {
            w.run_type = Some(RunType::Llm);
            w.name = Some("ChatOpenAI".into());
            w.inputs = Some(json!({"messages": [{"role": "user", "content": "well hello there"}]}));
        })],
        &[run(|w| {
            w.run_type = Some(RunType::Llm);
            w.name = Some("ChatOpenAI".into());
            w.inputs = Some(json!({"messages": [{"role": "hello", "content": "bye"}]}));
        })],
    );
    check(
        r#"and(eq(is_root, true), and(eq(feedback_key, "user_score"), eq(feedback_score, 1)))"#,
        &[run(|_| {}).fb("user_score", Some(1.0), None)],
        &[child().fb("user_score", Some(1.0), None), run(|_| {}).fb("user_score", Some(2.0), None)],
    );
    // The webhook doc's filters.
    check(
        r#"has(feedback_key, "answer_usefulness")"#,
        &[run(|_| {}).fb("answer_usefulness", Some(0.9), None)],
        &[run(|_| {}), run(|_| {}).fb("other", Some(0.1), None)],
    );
    check(
        r#"has(feedback_key, "answer_usefulness") and feedback_score < 0.5"#,
        &[
            run(|_| {}).fb("answer_usefulness", Some(0.2), None),
            run(|_| {}).fb("answer_usefulness", Some(0.9), None).fb("answer_usefulness", Some(0.1), None),
        ],
        &[
            run(|_| {}).fb("answer_usefulness", Some(0.9), None),
            run(|_| {}).fb("answer_usefulness", Some(0.9), None).fb("other", Some(0.1), None),
            run(|_| {}),
        ],
    );
    check(
        r#"eq(feedback_value, "halted")"#,
        &[run(|_| {}).fb("k", None, Some(json!("halted")))],
        &[run(|_| {}).fb("k", None, Some(json!("ok")))],
    );
}

#[test]
fn negative_key_value_forms() {
    let k_v = run(meta(json!({"k": "v"})));
    let k_w = run(meta(json!({"k": "w"})));
    let other_v = run(meta(json!({"other": "v"})));
    let none = run(meta(json!({"other": "x"})));
    // key exists
    check("eq(metadata_key, 'k')", &[run(meta(json!({"k": 1})))], &[run(meta(json!({"other": 1})))]);
    // key exists and its value is not v
    check(
        "and(eq(metadata_key,'k'), neq(metadata_value,'v'))",
        &[run(meta(json!({"k": "w"})))],
        &[run(meta(json!({"k": "v"}))), run(meta(json!({"other": "w"})))],
    );
    // key absent
    check("neq(metadata_key,'k')", &[run(meta(json!({"other": "v"}))), run(|_| {})], &[run(meta(json!({"k": "v"})))]);
    // no key k, and value v appears under no key
    check(
        "and(neq(metadata_key,'k'), neq(metadata_value,'v'))",
        &[run(meta(json!({"other": "x"})))],
        &[run(meta(json!({"k": "w"}))), run(meta(json!({"other": "v"})))],
    );
    // no key k, but some other key has value v
    check("and(neq(metadata_key,'k'), eq(metadata_value,'v'))", &[other_v], &[k_v, k_w, none]);
    // value v under no key
    check("neq(metadata_value, 'v')", &[run(meta(json!({"k": "w"})))], &[run(meta(json!({"k": "v"})))]);
    // JSON types are kept: true is not "true"
    check("eq(metadata_value, true)", &[run(meta(json!({"flag": true})))], &[run(meta(json!({"flag": "true"})))]);
    check("gte(metadata_value, 0.5)", &[run(meta(json!({"p": 0.7})))], &[run(meta(json!({"p": 0.2})))]);
    // nested keys flatten with dots; arrays repeat the key
    check(
        "and(eq(metadata_key, 'user.plan'), eq(metadata_value, 'pro'))",
        &[run(meta(json!({"user": {"plan": "pro"}}))), run(meta(json!({"user": [{"plan": "free"}, {"plan": "pro"}]})))],
        &[run(meta(json!({"user": {"plan": "free"}, "plan": "pro"})))],
    );
    check(
        "and(eq(output_key, 'answer'), like(output_value, 'Yes%'))",
        &[run(|w| w.outputs = Some(json!({"answer": "Yes, indeed"})))],
        &[run(|w| w.outputs = Some(json!({"answer": "No", "other": "Yes"})))],
    );
    // feedback negative forms
    check(
        "neq(feedback_key, 'user_score')",
        &[run(|_| {}).fb("other", Some(1.0), None)],
        &[run(|_| {}).fb("user_score", Some(1.0), None)],
    );
    check(
        "and(eq(feedback_key, 'user_score'), neq(feedback_score, 1))",
        &[run(|_| {}).fb("user_score", Some(0.0), None)],
        &[run(|_| {}).fb("user_score", Some(1.0), None)],
    );
}

#[test]
fn other_fields_and_operators() {
    check("eq(status, 'error')", &[run(|w| w.error = Some("x".into()))], &[run(|_| {})]);
    check("eq(status, 'pending')", &[run(|w| w.end_time = None)], &[run(|_| {})]);
    check("not(eq(run_type, 'llm'))", &[run(|_| {})], &[run(|w| w.run_type = Some(RunType::Llm))]);
    check("not eq(run_type, 'chain') or eq(name, 'extractor')", &[run(|_| {})], &[run(|w| w.name = Some("y".into()))]);
    check("in(name, ['a', 'extractor'])", &[run(|_| {})], &[run(|w| w.name = Some("b".into()))]);
    check("like(name, 'ext%or')", &[run(|_| {})], &[run(|w| w.name = Some("extract".into()))]);
    check("like(name, 'e_tractor')", &[run(|_| {})], &[run(|w| w.name = Some("eextractor".into()))]);
    check("search(name, 'TRACT')", &[run(|_| {})], &[run(|w| w.name = Some("x".into()))]);
    check("exists(metadata, 'tenant_id')", &[run(meta(json!({"tenant_id": "t"})))], &[run(meta(json!({"x": 1})))]);
    check(
        "has(metadata, '{\"env\": \"prod\"}')",
        &[run(meta(json!({"env": "prod", "x": 1})))],
        &[run(meta(json!({"env": "dev"})))],
    );
    check("eq(thread_id, 't-1')", &[run(meta(json!({"thread_id": "t-1"})))], &[run(|_| {})]);
    check(
        "eq(tags, 'a') and neq(tags, 'b')",
        &[run(|w| w.tags = Some(vec!["a".into()]))],
        &[run(|w| w.tags = Some(vec!["a".into(), "b".into()]))],
    );
    check(
        "total_tokens >= 10 AND prompt_tokens == 4",
        &[run(|w| {
            w.total_tokens = Some(10);
            w.prompt_tokens = Some(4)
        })],
        &[run(|w| w.total_tokens = Some(9))],
    );
    check(
        "lt(total_cost, 0.5)",
        &[run(|w| w.total_cost = Some(json!("0.25")))],
        &[run(|w| w.total_cost = Some(json!(0.75))), run(|_| {})],
    );
    check("lte(end_time, '2023-07-16T00:00:01Z')", &[run(|_| {})], &[run(|_| {}).end(5.0)]);
    check("eq(is_root, false)", &[child()], &[run(|_| {})]);
    check("eq(parent_run_id, null)", &[run(|_| {})], &[child()]);
    let r = run(|_| {});
    let id = r.run.id;
    check(&format!("eq(id, '{id}') and eq(trace_id, \"{id}\")"), &[r], &[run(|_| {})]);
    check(
        "(eq(name, 'x') or eq(name, 'extractor')) and eq(run_type, 'chain')",
        &[run(|_| {})],
        &[run(|w| w.run_type = Some(RunType::Tool))],
    );
    check("and(eq(name, 'extractor'))", &[run(|_| {})], &[]);
    check("eq(name, \"quote \\\" and \\u00e9\")", &[run(|w| w.name = Some("quote \" and é".into()))], &[]);
}

#[test]
fn errors_name_position_and_expectation() {
    let err = |f: &str| Filter::parse(f).unwrap_err();
    let e = err(r#"and(eq(name, "a") eq(name, "b"))"#);
    assert_eq!(e.position, 18);
    assert!(e.message.contains("expected ',' or ')'"), "{e}");
    assert!(e.to_string().contains("\n                    ^"), "{e}");
    assert!(err("eq(nam, 'x')").message.contains("unknown field \"nam\""));
    assert!(err("gt(name, 'x')").message.contains("operator gt does not apply to field name"));
    assert!(err("gt(start_time, 'yesterday')").message.contains("malformed datetime"));
    assert!(err("gt(latency, '5 parsecs')").message.contains("malformed duration"));
    assert!(err("eq(id, 'abc')").message.contains("not a valid UUID"));
    assert!(err("eq(run_type, 'banana')").message.contains("expected one of"));
    assert!(err("eq(is_root, 'yes')").message.contains("true or false"));
    assert!(err("eq(name, 'unterminated)").message.contains("unterminated string"));
    assert!(err("frobnicate(name, 'x')").message.contains("unknown function"));
    assert!(err("eq(name)").message.contains("takes 2 arguments"));
    assert!(err("").message.contains("empty filter"));
    assert!(err("eq(name, 'a') extra").message.contains("expected 'and', 'or'"));
    assert!(err("eq(name, x)").message.contains("quote strings"));
    assert!(err("eq(name, null)").message.contains("never null"));
    assert!(err(&"not(".repeat(100)).message.contains("nests deeper"));
    assert!(err("eq(name, 'a') # comment").message.contains("unexpected character"));
}

/// Random token soup and random bytes never panic: every input parses or is
/// refused with an error.
#[test]
fn random_input_never_panics() {
    let atoms = [
        "and",
        "or",
        "not",
        "eq",
        "neq",
        "gt",
        "has",
        "search",
        "in",
        "like",
        "exists",
        "(",
        ")",
        "[",
        "]",
        ",",
        "'x'",
        "\"y\"",
        "1",
        "-2.5e3",
        "null",
        "true",
        "name",
        "latency",
        "metadata_key",
        "feedback_score",
        "=",
        "!=",
        "<",
        ">=",
        "'5s'",
        "'2023-01-01'",
        "\\",
        "'",
        "é",
        " ",
    ];
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let r = run(|w| w.extra = Some(json!({"metadata": {"a": [1, {"b": "c"}]}}))).fb("k", Some(1.0), None);
    for _ in 0..20_000 {
        let n = (next() % 12) as usize;
        let text: String = (0..n).map(|_| atoms[(next() % atoms.len() as u64) as usize]).collect::<Vec<_>>().join(" ");
        if let Ok(f) = Filter::parse(&text) {
            let _ = f.matches(&r.run, &r.feedback);
        }
        let bytes: Vec<u8> = (0..n * 3).map(|_| (next() % 256) as u8).collect();
        let _ = Filter::parse(&String::from_utf8_lossy(&bytes));
    }
}

/// Which filters need a run's inputs or outputs: a rule's window is read
/// without them, so a filter that reads them and is not flagged would
/// silently never match.
#[test]
fn filters_that_read_inputs_or_outputs_say_so() {
    for (text, io) in [
        (r#"eq(name, "x")"#, false),
        (r#"and(eq(metadata_key, "user"), eq(metadata_value, "u1"))"#, false),
        (r#"has(tags, "prod")"#, false),
        (r#"search("refund")"#, true),
        (r#"and(eq(input_key, "q"), eq(input_value, "hi"))"#, true),
        (r#"eq(output_key, "answer")"#, true),
        (r#"or(eq(name, "x"), not(search("y")))"#, true),
        (r#"and(eq(feedback_key, "k"), gt(feedback_score, 0.5))"#, false),
    ] {
        assert_eq!(Filter::parse(text).unwrap().uses_io(), io, "{text}");
    }
}
