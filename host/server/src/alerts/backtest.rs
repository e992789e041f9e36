//! A backtest: an alert evaluated over the stored runs of the last hours,
//! as if it had existed then, so a user tunes its thresholds before saving.
//!
//! Input: a checked [`AlertSpec`] and [`BacktestLimits`]. The project's runs
//! that started from a window before the span to its end are read (at most
//! `max_runs`, newest first; the answer says when it stopped early), the
//! alert's filter applied, and for a feedback metric their feedback read.
//! The alert is then evaluated at evaluation times across the span (every
//! `evaluate_every_seconds`, or coarser so that there are at most
//! [`MAX_POINTS`]), each over the runs that started in its window, through
//! the same state machine a saved alert uses, reminders left out. Output:
//! the metric's series with the level at each point, and when the alert
//! would have fired (`triggered`) and resolved. Nothing is stored or sent.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use super::metric;
use super::read::{Pages, ReadError};
use super::state::{Notice, step};
use runhook_core::model::alert::{AlertSpec, AlertState, Level};
use runhook_core::model::{AlertId, Feedback, RunId, RunRecord, Timestamp};
use runhook_store::Store;

/// The most evaluation points a backtest returns.
pub const MAX_POINTS: usize = 2000;

/// The span and how much of the store a backtest reads.
#[derive(Debug, Clone, Copy)]
pub struct BacktestLimits {
    /// The first evaluation is after this.
    pub since: Timestamp,
    /// The last evaluation is at or before this.
    pub until: Timestamp,
    /// Most runs read.
    pub max_runs: usize,
    /// How long the filter may take in all.
    pub budget: Duration,
}

/// One evaluation point.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// When.
    pub at: Timestamp,
    /// The metric (`None`: no data).
    pub value: Option<f64>,
    /// The level after the evaluation.
    pub level: Level,
}

/// What the alert would have done.
#[derive(Debug, Default)]
pub struct Backtest {
    /// Runs read (the filter applied after).
    pub scanned: usize,
    /// Whether every run of the span was read.
    pub complete: bool,
    /// Runs the filter kept.
    pub selected: usize,
    /// Seconds between points.
    pub step_seconds: i64,
    /// The series.
    pub points: Vec<Point>,
    /// When it would have fired and resolved, with the notification.
    pub events: Vec<(Timestamp, Notice)>,
}

/// Backtests `spec` over the stored runs `limits` allow.
pub async fn backtest(store: &Arc<dyn Store>, spec: &AlertSpec, limits: BacktestLimits) -> Result<Backtest, ReadError> {
    let window = chrono::Duration::minutes(i64::from(spec.window_minutes));
    let from = Timestamp::from_datetime(limits.since.as_datetime() - window);
    let mut pages = Pages::new(store, spec, (from, limits.until), limits.max_runs, limits.budget)?;
    let mut runs: Vec<RunRecord> = Vec::new();
    let mut feedback: HashMap<RunId, Vec<Feedback>> = HashMap::new();
    while let Some(page) = pages.next().await? {
        runs.extend(page.runs);
        for f in page.feedback {
            if let Some(run) = f.run_id {
                feedback.entry(run).or_default().push(f);
            }
        }
    }
    runs.sort_by_key(|r| (r.start_time, r.id));
    let mut out =
        Backtest { scanned: pages.scanned, complete: pages.complete, selected: runs.len(), ..Backtest::default() };

    // Reminders say nothing about when an alert fires or resolves.
    let spec = AlertSpec { reminder_minutes: 0, ..spec.clone() };
    let span = limits.since.seconds_until(&limits.until).max(0.0);
    let every = i64::from(spec.evaluate_every_seconds).max((span / MAX_POINTS as f64).ceil() as i64).max(1);
    out.step_seconds = every;
    let (id, mut state) = (AlertId::new_v4(), AlertState::default());
    let mut at = limits.since.as_datetime() + chrono::Duration::seconds(every);
    while at <= limits.until.as_datetime() {
        let from = runs.partition_point(|r| r.start_time.as_datetime() < at - window);
        let to = runs.partition_point(|r| r.start_time.as_datetime() < at);
        let in_window = &runs[from..to];
        let fb: Vec<Feedback> =
            in_window.iter().flat_map(|r| feedback.get(&r.id).into_iter().flatten().cloned()).collect();
        let value = metric::value(&spec.metric, in_window, &fb);
        let now = Timestamp::from_datetime(at);
        let (next, notice) = step(id, &spec, &state, value, now);
        if let Some(n) = notice {
            out.events.push((now, n));
        }
        out.points.push(Point { at: now, value, level: next.level });
        state = next;
        at += chrono::Duration::seconds(every);
    }
    Ok(out)
}
