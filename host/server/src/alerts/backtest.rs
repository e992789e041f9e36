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
use super::state::{Notice, step};
use crate::select::{Budget, SelectError, Selection, SelectionError};
use runhook_core::model::alert::{AlertSpec, AlertState, Level, Metric};
use runhook_core::model::{AlertId, Feedback, RunId, RunRecord, Timestamp};
use runhook_store::{RunCursor, RunQuery, Store, StoreError};

/// The most evaluation points a backtest returns.
pub const MAX_POINTS: usize = 2000;

/// Runs read per query.
const STEP: usize = 500;

/// Why a backtest could not run.
#[derive(Debug, thiserror::Error)]
pub enum BacktestError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The filter does not parse.
    #[error("filter: {0}")]
    Filter(#[from] SelectionError),
    /// The filter could not be evaluated (its deadline passed).
    #[error(transparent)]
    Select(#[from] SelectError),
}

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
pub async fn backtest(
    store: &Arc<dyn Store>,
    spec: &AlertSpec,
    limits: BacktestLimits,
) -> Result<Backtest, BacktestError> {
    let selection = Selection::parse(spec.filter.as_deref(), None, None)?;
    let budget = Budget::within(limits.budget);
    let _abandon = budget.abandon_on_drop();
    let window = chrono::Duration::minutes(i64::from(spec.window_minutes));
    let mut out = Backtest { complete: true, ..Backtest::default() };
    let mut query = RunQuery {
        sessions: vec![spec.session_id],
        start_time: Some(Timestamp::from_datetime(limits.since.as_datetime() - window)),
        limit: STEP,
        lean: !selection.needs_io(),
        ..RunQuery::default()
    };
    let mut runs: Vec<RunRecord> = Vec::new();
    loop {
        let (mut page, next) = store.query_runs(&query).await?;
        query.cursor = page.last().map(|r| RunCursor { start_time: r.start_time, id: r.id });
        let room = limits.max_runs - out.scanned;
        if page.len() > room {
            page.truncate(room);
            out.complete = false;
        }
        out.scanned += page.len();
        runs.extend(selection.retain(store.as_ref(), page, &budget).await?);
        if next.is_none() {
            break;
        }
        if out.scanned == limits.max_runs {
            out.complete = false;
            break;
        }
    }
    runs.retain(|r| r.start_time <= limits.until);
    runs.sort_by_key(|r| (r.start_time, r.id));
    out.selected = runs.len();
    let mut feedback: HashMap<RunId, Vec<Feedback>> = HashMap::new();
    if matches!(spec.metric, Metric::FeedbackAvg { .. } | Metric::FeedbackCount { .. }) {
        let ids: Vec<RunId> = runs.iter().map(|r| r.id).collect();
        for chunk in ids.chunks(STEP) {
            for f in store.feedback_for_runs(chunk).await? {
                if let Some(run) = f.run_id {
                    feedback.entry(run).or_default().push(f);
                }
            }
        }
    }

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
