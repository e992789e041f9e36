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
    let mut acc = Accumulator::new(metric);
    acc.add(runs, feedback);
    acc.value()
}

/// A metric computed a page of runs at a time: what it keeps is a few
/// counters, and for a percentile one number per finished run.
#[derive(Debug)]
pub struct Accumulator<'m> {
    metric: &'m Metric,
    runs: u64,
    finished: u64,
    errors: u64,
    finished_errors: u64,
    latencies: Vec<f64>,
    tokens: i64,
    cost: f64,
    scores: (f64, u64),
    feedback: u64,
}

impl<'m> Accumulator<'m> {
    /// Nothing added yet.
    pub fn new(metric: &'m Metric) -> Self {
        Self {
            metric,
            runs: 0,
            finished: 0,
            errors: 0,
            finished_errors: 0,
            latencies: Vec::new(),
            tokens: 0,
            cost: 0.0,
            scores: (0.0, 0),
            feedback: 0,
        }
    }

    /// Adds `runs` and the `feedback` on them.
    pub fn add<R: std::borrow::Borrow<RunRecord>>(&mut self, runs: &[R], feedback: &[Feedback]) {
        let percentile = matches!(self.metric, Metric::LatencyP50 | Metric::LatencyP95 | Metric::LatencyP99);
        for r in runs {
            let r = r.borrow();
            self.runs += 1;
            self.errors += u64::from(r.error.is_some());
            if let Some(end) = &r.end_time {
                self.finished += 1;
                self.finished_errors += u64::from(r.error.is_some());
                if percentile {
                    self.latencies.push(r.start_time.seconds_until(end));
                }
            }
            self.tokens += r.total_tokens.unwrap_or(0);
            self.cost += r.total_cost.as_deref().and_then(|c| c.parse::<f64>().ok()).unwrap_or(0.0);
        }
        if let Metric::FeedbackAvg { key } | Metric::FeedbackCount { key } = self.metric {
            for f in feedback.iter().filter(|f| &f.key == key) {
                self.feedback += 1;
                if let Some(s) = f.score {
                    self.scores = (self.scores.0 + s, self.scores.1 + 1);
                }
            }
        }
    }

    /// The metric over everything added.
    pub fn value(mut self) -> Option<f64> {
        match self.metric {
            Metric::RunCount => Some(self.runs as f64),
            Metric::ErrorCount => Some(self.errors as f64),
            Metric::ErrorRate => (self.finished > 0).then(|| self.finished_errors as f64 / self.finished as f64),
            Metric::LatencyP50 => percentile(&mut self.latencies, 0.50),
            Metric::LatencyP95 => percentile(&mut self.latencies, 0.95),
            Metric::LatencyP99 => percentile(&mut self.latencies, 0.99),
            Metric::TotalTokens => Some(self.tokens as f64),
            Metric::TotalCost => Some(self.cost),
            Metric::FeedbackAvg { .. } => (self.scores.1 > 0).then(|| self.scores.0 / self.scores.1 as f64),
            Metric::FeedbackCount { .. } => Some(self.feedback as f64),
        }
    }
}

/// The nearest-rank `q` quantile of `values`.
fn percentile(values: &mut [f64], q: f64) -> Option<f64> {
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
