//! `runhook-bench filters`: filter evaluations per second on one core.
//!
//! Five representative filters on a 2 KB run with three pieces of feedback,
//! evaluated in a tight loop on one thread. Beside them, the same check as
//! the first filter hand-written in Rust (`run.run_type == llm`), measured
//! in the same run: the ratio shows what the interpreter costs. Then the
//! patterns that made the old LIKE and search quadratic, over a long field,
//! beside those old matchers on the same text.

use std::time::Instant;

use clap::Args;
use serde_json::json;

use runhook_core::filter::Filter;
use runhook_core::model::{
    Feedback, FeedbackId, FeedbackSource, RunId, RunRecord, RunType, RunWrite, SessionId, Timestamp,
};

#[derive(Debug, Args)]
pub(crate) struct FilterBenchArgs {
    /// Evaluations per filter.
    #[arg(long, default_value_t = 2_000_000)]
    iterations: u32,
    /// Characters of the long field the pathological patterns scan.
    #[arg(long, default_value_t = 1_000_000)]
    long_chars: usize,
}

fn sample() -> anyhow::Result<(RunRecord, Vec<Feedback>)> {
    let mut value = crate::sample_run();
    if let Some(o) = value.as_object_mut() {
        for k in ["status", "feedback_stats", "session_id"] {
            o.remove(k);
        }
    }
    let w: RunWrite = serde_json::from_value(value)?;
    let id = w.id.unwrap_or_else(RunId::new_v7);
    let run = RunRecord::create(id, SessionId::new_v4(), w, Timestamp::now())?;
    let fb = |key: &str, score: f64| Feedback {
        id: FeedbackId::new_v4(),
        run_id: Some(id),
        trace_id: Some(id),
        session_id: None,
        key: key.into(),
        score: Some(score),
        value: None,
        comment: None,
        correction: None,
        feedback_source: FeedbackSource::api(),
        extra: Some(json!({})),
        created_at: Timestamp::now(),
        modified_at: Timestamp::now(),
    };
    Ok((run, vec![fb("correctness", 1.0), fb("user_score", 0.0), fb("answer_usefulness", 0.3)]))
}

pub(crate) fn run(args: &FilterBenchArgs) -> anyhow::Result<()> {
    let (run, feedback) = sample()?;
    let n = args.iterations.max(1);
    let cases = [
        ("simple equality", r#"eq(run_type, "llm")"#),
        ("conjunction of three", r#"and(eq(run_type, "llm"), neq(error, null), gt(latency, 1))"#),
        ("metadata pair", r#"and(eq(metadata_key, "ls_model_name"), eq(metadata_value, "gpt-4o"))"#),
        ("feedback pair", r#"has(feedback_key, "answer_usefulness") and feedback_score < 0.5"#),
        ("search", r#"search("visa-free")"#),
    ];
    let native = {
        let started = Instant::now();
        let mut hits = 0u32;
        for _ in 0..n {
            hits += u32::from(std::hint::black_box(&run).run_type == RunType::Llm);
        }
        std::hint::black_box(hits);
        n as f64 / started.elapsed().as_secs_f64()
    };
    println!("runhook-bench filters: {n} evaluations each, one thread, 2 KB run with 3 feedback");
    println!("  {:<22} {:>14}   (baseline)", "native run_type check", format!("{native:.0}/s"));
    for (name, text) in cases {
        let filter = Filter::parse(text)?;
        anyhow::ensure!(filter.matches(&run, &feedback), "{name} does not match the sample run");
        let started = Instant::now();
        let mut hits = 0u32;
        for _ in 0..n {
            hits += u32::from(filter.matches(std::hint::black_box(&run), &feedback));
        }
        std::hint::black_box(hits);
        let rate = n as f64 / started.elapsed().as_secs_f64();
        println!("  {name:<22} {:>14}   {:>6.1}x native   {text}", format!("{rate:.0}/s"), native / rate);
    }
    println!("  target: >= 1,000,000/s per core for the simple ones");
    pathological(&run, args.long_chars)
}

/// Patterns that made the old matchers quadratic, over a long `error`,
/// beside those matchers (backtracking LIKE, windowed search) on the same
/// text, measured in this run.
fn pathological(sample: &RunRecord, chars: usize) -> anyhow::Result<()> {
    let needle = format!("{}b", "a".repeat(10_000));
    let run = RunRecord { error: Some("a".repeat(chars)), ..sample.clone() };
    let text = run.error.as_deref().unwrap_or_default();
    println!("runhook-bench filters: pathological patterns over a {chars}-character field, one evaluation each");
    let underscored = format!("%a{}_b%", "a".repeat(9_999));
    let cases = [
        ("like %a{10000}b", format!("like(error, '%{needle}')"), Old::Like(format!("%{needle}"))),
        ("like %a{10000}_b%", format!("like(error, '{underscored}')"), Old::Like(underscored.clone())),
        ("search a{10000}b", format!("search('{needle}')"), Old::Search(needle.clone())),
    ];
    for (name, filter, old) in cases {
        let filter = Filter::parse(&filter)?;
        let started = Instant::now();
        let now = filter.matches(std::hint::black_box(&run), &[]);
        let new_time = started.elapsed();
        let started = Instant::now();
        let before = match &old {
            Old::Like(pattern) => backtracking_like(pattern, text),
            Old::Search(needle) => windowed_contains(text, needle),
        };
        let old_time = started.elapsed();
        anyhow::ensure!(now == before, "{name}: the matchers disagree");
        println!(
            "  {name:<22} {:>10.2} ms   (old matcher: {:>9.2} ms, {:.0}x)",
            new_time.as_secs_f64() * 1e3,
            old_time.as_secs_f64() * 1e3,
            old_time.as_secs_f64() / new_time.as_secs_f64().max(1e-9)
        );
    }
    Ok(())
}

/// A matcher runhook shipped before, with its pattern.
enum Old {
    Like(String),
    Search(String),
}

/// The LIKE matcher runhook shipped before: backtracking to the last `%`.
fn backtracking_like(pattern: &str, text: &str) -> bool {
    let pat: Vec<char> = pattern.chars().collect();
    let text: Vec<char> = text.chars().collect();
    let (mut pi, mut ti, mut star) = (0usize, 0usize, None::<(usize, usize)>);
    while ti < text.len() {
        match pat.get(pi) {
            Some('%') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(c) if *c == '_' || *c == text[ti] => (pi, ti) = (pi + 1, ti + 1),
            _ => match star {
                Some((sp, st)) => (pi, ti, star) = (sp + 1, st + 1, Some((sp, st + 1))),
                None => return false,
            },
        }
    }
    pat[pi..].iter().all(|c| *c == '%')
}

/// The search runhook shipped before: every window compared.
fn windowed_contains(hay: &str, needle: &str) -> bool {
    let (h, n) = (hay.as_bytes(), needle.as_bytes());
    n.len() <= h.len() && h.windows(n.len()).any(|w| w.iter().zip(n).all(|(a, b)| a.to_ascii_lowercase() == *b))
}
