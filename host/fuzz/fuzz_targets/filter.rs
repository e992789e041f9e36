//! The filter language: any text either parses or is refused with a
//! located error, and a parsed filter evaluates on any run without
//! panicking. The input is the filter text, then (after a NUL) a run's
//! JSON, so the evaluator meets arbitrary fields too.
#![no_main]

use libfuzzer_sys::fuzz_target;
use runhook_core::filter::Filter;
use runhook_core::model::{RunId, RunRecord, RunWrite, SessionId, Timestamp};

fuzz_target!(|data: &[u8]| {
    let (text, run) = match data.iter().position(|b| *b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &b""[..]),
    };
    let Ok(text) = std::str::from_utf8(text) else { return };
    let filter = match Filter::parse(text) {
        Ok(f) => f,
        Err(e) => {
            // The error names a position inside the text.
            let _ = e.to_string();
            return;
        }
    };
    let mut runs = vec![sample()];
    if let Ok(w) = serde_json::from_slice::<RunWrite>(run)
        && let Ok(r) = RunRecord::create(RunId::new_v4(), SessionId::new_v4(), w, Timestamp::now())
    {
        runs.push(r);
    }
    for r in &runs {
        let _ = filter.matches(r, &[]);
    }
});

fn sample() -> RunRecord {
    let w: RunWrite = serde_json::from_value(serde_json::json!({
        "name": "ChatOpenAI", "run_type": "llm", "start_time": "2026-11-22T10:00:00Z",
        "end_time": "2026-11-22T10:00:02Z", "error": "rate limit exceeded", "tags": ["prod", "v2"],
        "inputs": {"question": "why?", "nested": {"a": [1, 2, {"b": "c"}]}},
        "outputs": {"answer": "because"}, "extra": {"metadata": {"env": "prod", "thread_id": "t1"}},
        "total_tokens": 42
    }))
    .expect("the sample run is valid JSON for a run");
    RunRecord::create(RunId::new_v4(), SessionId::new_v4(), w, Timestamp::now()).expect("the sample run is valid")
}
