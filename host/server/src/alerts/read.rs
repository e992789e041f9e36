//! Reading an alert's runs: the project's runs that started in a span,
//! newest first, a page at a time, through the alert's filter, with their
//! feedback when the metric is a feedback metric. Shared by an evaluation
//! (which folds each page into the metric and keeps none) and a backtest
//! (which keeps them all, up to `max_runs` read).

use std::sync::Arc;
use std::time::Duration;

use crate::select::{AbandonOnDrop, Budget, SelectError, Selection, SelectionError};
use runhook_core::model::alert::{AlertSpec, Metric};
use runhook_core::model::{Feedback, RunId, RunRecord, SessionId, Timestamp};
use runhook_store::{RunCursor, RunQuery, Store, StoreError};

/// Runs read per query.
const PAGE: usize = 1000;

/// Why the runs could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The filter does not parse.
    #[error("filter: {0}")]
    Filter(#[from] SelectionError),
    /// The filter could not be evaluated (its deadline passed, or the
    /// caller went away).
    #[error(transparent)]
    Select(#[from] SelectError),
    /// The read the alerts of a project share failed (each is told so).
    #[error("the project's runs could not be read: {0}")]
    Shared(String),
}

/// One page: the runs the filter kept, and their feedback.
#[derive(Debug, Default)]
pub struct Page {
    /// The runs.
    pub runs: Vec<RunRecord>,
    /// Their feedback (only for a feedback metric).
    pub feedback: Vec<Feedback>,
}

/// What a read carries beyond lean runs.
#[derive(Debug, Clone, Copy, Default)]
pub struct Reads {
    /// Inputs and outputs (a filter reads them).
    pub io: bool,
    /// The runs' feedback (a feedback metric).
    pub feedback: bool,
}

/// Whether `metric` is computed from feedback.
pub fn needs_feedback(metric: &Metric) -> bool {
    matches!(metric, Metric::FeedbackAvg { .. } | Metric::FeedbackCount { .. })
}

/// The pages of an alert's runs that started from `from` to `until`.
#[derive(Debug)]
pub struct Pages<'s> {
    store: &'s Arc<dyn Store>,
    selection: Selection,
    budget: Budget,
    _abandon: AbandonOnDrop,
    query: RunQuery,
    until: Timestamp,
    feedback: bool,
    max_runs: usize,
    done: bool,
    /// Runs read so far (before the filter).
    pub scanned: usize,
    /// Whether every run of the span was read (false once `max_runs` cut it short).
    pub complete: bool,
}

impl<'s> Pages<'s> {
    /// Reads `spec`'s runs that started from `from` to `until`, at most
    /// `max_runs` of them, the filter within `budget`.
    pub fn new(
        store: &'s Arc<dyn Store>,
        spec: &AlertSpec,
        (from, until): (Timestamp, Timestamp),
        max_runs: usize,
        budget: Duration,
    ) -> Result<Self, ReadError> {
        let selection = Selection::parse(spec.filter.as_deref(), None, None)?;
        let reads = Reads { io: selection.needs_io(), feedback: needs_feedback(&spec.metric) };
        Ok(Self::over(store, spec.session_id, selection, reads, (from, until), max_runs, budget))
    }

    /// Every run of `project` that started from `from` to `until`, with
    /// what `reads` asks for, unfiltered: what the alerts of a project
    /// share, each then applying its own filter (see `evaluate`).
    pub fn project(
        store: &'s Arc<dyn Store>,
        project: SessionId,
        reads: Reads,
        span: (Timestamp, Timestamp),
        budget: Duration,
    ) -> Self {
        Self::over(store, project, Selection::default(), reads, span, usize::MAX, budget)
    }

    fn over(
        store: &'s Arc<dyn Store>,
        project: SessionId,
        selection: Selection,
        reads: Reads,
        (from, until): (Timestamp, Timestamp),
        max_runs: usize,
        budget: Duration,
    ) -> Self {
        let query = RunQuery {
            sessions: vec![project],
            start_time: Some(from),
            limit: PAGE,
            lean: !reads.io,
            ..RunQuery::default()
        };
        let budget = Budget::within(budget);
        let feedback = reads.feedback;
        Self {
            store,
            selection,
            _abandon: budget.abandon_on_drop(),
            budget,
            query,
            until,
            feedback,
            max_runs,
            done: false,
            scanned: 0,
            complete: true,
        }
    }

    /// The next page; `None` when the span is read.
    pub async fn next(&mut self) -> Result<Option<Page>, ReadError> {
        if self.done {
            return Ok(None);
        }
        let (mut page, next) = self.store.query_runs(&self.query).await?;
        self.query.cursor = page.last().map(|r| RunCursor { start_time: r.start_time, id: r.id });
        let room = self.max_runs - self.scanned;
        if page.len() > room || (page.len() == room && next.is_some()) {
            page.truncate(room);
            self.complete = false;
            self.done = true;
        }
        self.done |= next.is_none();
        self.scanned += page.len();
        let mut runs = self.selection.retain(self.store.as_ref(), page, &self.budget).await?;
        runs.retain(|r| r.start_time <= self.until);
        let feedback = match self.feedback && !runs.is_empty() {
            true => self.store.feedback_for_runs(&runs.iter().map(|r| r.id).collect::<Vec<RunId>>()).await?,
            false => Vec::new(),
        };
        Ok(Some(Page { runs, feedback }))
    }
}
