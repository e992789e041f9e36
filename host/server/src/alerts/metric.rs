//! An alert's metric over its window: the value one evaluation compares
//! with the thresholds.
//!
//! Input: the runs that started in the window (the alert's filter already
//! applied) and the feedback on them. Output: the value, or `None` when
//! the metric is undefined on them (a rate, a percentile or an average of
//! nothing; see `Metric::can_lack_data`). Counts and sums of nothing are 0.
//! Latency is end minus start, in seconds, of the finished runs; a
//! percentile is the nearest rank (the smallest value with at least that
//! share of the values at or below it), so it is always a measured value.

use runhook_core::model::alert::Metric;
use runhook_core::model::{Feedback, RunRecord};

/// The value of `metric` over `runs` and `feedback`.
pub fn value(metric: &Metric, runs: &[RunRecord], feedback: &[Feedback]) -> Option<f64> {
    let finished = || runs.iter().filter(|r| r.end_time.is_some());
    let errors = || runs.iter().filter(|r| r.error.is_some()).count();
    match metric {
        Metric::RunCount => Some(runs.len() as f64),
        Metric::ErrorCount => Some(errors() as f64),
        Metric::ErrorRate => {
            let n = finished().count();
            (n > 0).then(|| finished().filter(|r| r.error.is_some()).count() as f64 / n as f64)
        }
        Metric::LatencyP50 => percentile(latencies(runs), 0.50),
        Metric::LatencyP95 => percentile(latencies(runs), 0.95),
        Metric::LatencyP99 => percentile(latencies(runs), 0.99),
        Metric::TotalTokens => Some(runs.iter().filter_map(|r| r.total_tokens).sum::<i64>() as f64),
        Metric::TotalCost => {
            Some(runs.iter().filter_map(|r| r.total_cost.as_deref()?.parse::<f64>().ok()).sum::<f64>())
        }
        Metric::FeedbackAvg { key } => {
            let s: Vec<f64> = feedback.iter().filter(|f| &f.key == key).filter_map(|f| f.score).collect();
            (!s.is_empty()).then(|| s.iter().sum::<f64>() / s.len() as f64)
        }
        Metric::FeedbackCount { key } => Some(feedback.iter().filter(|f| &f.key == key).count() as f64),
    }
}

fn latencies(runs: &[RunRecord]) -> Vec<f64> {
    runs.iter().filter_map(|r| Some(r.start_time.seconds_until(&r.end_time?))).collect()
}

/// The nearest-rank `q` quantile of `values`.
fn percentile(mut values: Vec<f64>, q: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let rank = (q * values.len() as f64).ceil() as usize;
    values.get(rank.clamp(1, values.len()) - 1).copied()
}

#[cfg(test)]
mod tests {
    use runhook_core::model::{FeedbackId, FeedbackSource, RunId, RunType, RunWrite, SessionId, Timestamp};

    use super::*;

    fn run(latency_ms: Option<i64>, error: bool, tokens: i64, cost: &str) -> RunRecord {
        let start = Timestamp::now();
        let w = RunWrite {
            name: Some("llm".into()),
            run_type: Some(RunType::Llm),
            start_time: Some(start),
            ..RunWrite::default()
        };
        let mut r = RunRecord::create(RunId::new_v4(), SessionId::new_v4(), w, start).unwrap();
        r.end_time =
            latency_ms.map(|ms| Timestamp::from_datetime(start.as_datetime() + chrono::Duration::milliseconds(ms)));
        r.error = error.then(|| "RateLimitError".to_string());
        r.total_tokens = Some(tokens);
        r.total_cost = Some(cost.into());
        r
    }

    fn feedback(key: &str, score: Option<f64>) -> Feedback {
        Feedback {
            id: FeedbackId::new_v4(),
            run_id: None,
            trace_id: None,
            session_id: None,
            key: key.into(),
            score,
            value: None,
            comment: None,
            correction: None,
            feedback_source: FeedbackSource::model("test"),
            extra: None,
            created_at: Timestamp::now(),
            modified_at: Timestamp::now(),
        }
    }

    #[test]
    fn each_metric_over_a_window() {
        // 100 finished runs of 1..=100 ms, every tenth errored, and one running.
        let mut runs: Vec<RunRecord> = (1..=100).map(|ms| run(Some(ms), ms % 10 == 0, 10, "0.001")).collect();
        runs.push(run(None, false, 5, "0.5"));
        let fb = [
            feedback("correct", Some(1.0)),
            feedback("correct", Some(0.0)),
            feedback("correct", None),
            feedback("other", Some(1.0)),
        ];
        let v = |m: Metric| value(&m, &runs, &fb);
        assert_eq!(v(Metric::RunCount), Some(101.0));
        assert_eq!(v(Metric::ErrorCount), Some(10.0));
        assert_eq!(v(Metric::ErrorRate), Some(0.1));
        assert_eq!(v(Metric::LatencyP50), Some(0.050));
        assert_eq!(v(Metric::LatencyP95), Some(0.095));
        assert_eq!(v(Metric::LatencyP99), Some(0.099));
        assert_eq!(v(Metric::TotalTokens), Some(1005.0));
        assert!((v(Metric::TotalCost).unwrap() - 0.6).abs() < 1e-9);
        assert_eq!(v(Metric::FeedbackAvg { key: "correct".into() }), Some(0.5));
        assert_eq!(v(Metric::FeedbackCount { key: "correct".into() }), Some(3.0));
    }

    #[test]
    fn an_empty_window_lacks_data_only_where_the_metric_is_undefined() {
        for m in [
            Metric::RunCount,
            Metric::ErrorCount,
            Metric::TotalTokens,
            Metric::TotalCost,
            Metric::FeedbackCount { key: "k".into() },
        ] {
            assert_eq!(value(&m, &[], &[]), Some(0.0), "{m:?}");
            assert!(!m.can_lack_data());
        }
        for m in [Metric::ErrorRate, Metric::LatencyP50, Metric::LatencyP99, Metric::FeedbackAvg { key: "k".into() }] {
            assert_eq!(value(&m, &[], &[]), None, "{m:?}");
            assert!(m.can_lack_data());
        }
        assert_eq!(
            value(&Metric::LatencyP99, &[run(Some(7), false, 0, "0")], &[]),
            Some(0.007),
            "one value is every percentile"
        );
    }
}
