//! Selecting runs with the three LangSmith filters, using the store for
//! what a run alone cannot answer.
//!
//! `filter` is evaluated on the run itself, `trace_filter` on the root of
//! its trace, `tree_filter` on every run of its trace (any may match); all
//! three must hold. Feedback, roots and trees are loaded once per batch of
//! candidates, only when a filter needs them.
//!
//! Layering: layer 2; imports `model`, `store`, `filter`.

use std::borrow::Borrow;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use runhook_core::filter::{Filter, FilterError};
use runhook_core::model::{Feedback, RunId, RunRecord};
use runhook_store::{RunStore, StoreError};

/// The filters of a query or a rule, compiled.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Selection {
    /// On the run.
    pub filter: Option<Filter>,
    /// On the run's root.
    pub trace_filter: Option<Filter>,
    /// On any run of the run's trace.
    pub tree_filter: Option<Filter>,
}

/// Which of the three filters failed to parse.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{field}: {error}")]
pub struct SelectionError {
    /// `filter`, `trace_filter` or `tree_filter`.
    pub field: &'static str,
    /// The parse error.
    pub error: FilterError,
}

impl Selection {
    /// Compiles the three filter texts (absent or blank means no filter).
    pub fn parse(filter: Option<&str>, trace: Option<&str>, tree: Option<&str>) -> Result<Self, SelectionError> {
        let one = |field: &'static str, text: Option<&str>| -> Result<Option<Filter>, SelectionError> {
            match text.map(str::trim).filter(|t| !t.is_empty()) {
                None => Ok(None),
                Some(t) => Filter::parse(t).map(Some).map_err(|error| SelectionError { field, error }),
            }
        };
        Ok(Self {
            filter: one("filter", filter)?,
            trace_filter: one("trace_filter", trace)?,
            tree_filter: one("tree_filter", tree)?,
        })
    }

    /// Whether there is nothing to evaluate.
    pub fn is_empty(&self) -> bool {
        self.filter.is_none() && self.trace_filter.is_none() && self.tree_filter.is_none()
    }

    /// Keeps the runs that pass all three filters, in order. What the
    /// filters need is read from the store first; the filters are then
    /// evaluated on a blocking thread (a filter over megabytes of text is
    /// CPU work that must not hold an async worker), which checks `budget`
    /// between runs and gives up when it is spent.
    pub async fn retain<R: Borrow<RunRecord> + Send + 'static>(
        &self,
        store: &dyn RunStore,
        runs: Vec<R>,
        budget: &Budget,
    ) -> Result<Vec<R>, SelectError> {
        if self.is_empty() || runs.is_empty() {
            return Ok(runs);
        }
        let own_feedback = match &self.filter {
            Some(f) if f.uses_feedback() => {
                let ids: Vec<RunId> = runs.iter().map(|r| r.borrow().id).collect();
                by_run(store.feedback_for_runs(&ids).await?)
            }
            _ => HashMap::new(),
        };
        let mut traces: Vec<RunId> = runs.iter().map(|r| r.borrow().trace_id).collect();
        traces.sort_unstable();
        traces.dedup();
        // Roots: trace ids are root run ids.
        let roots = match &self.trace_filter {
            None => None,
            Some(f) => Some(with_feedback(store, f, store.runs_by_ids(&traces).await?).await?),
        };
        let trees = match &self.tree_filter {
            None => None,
            Some(f) => Some(with_feedback(store, f, store.runs_in_traces(&traces).await?).await?),
        };
        let (this, budget) = (self.clone(), budget.clone());
        tokio::task::spawn_blocking(move || this.evaluate(runs, &own_feedback, roots, trees, &budget))
            .await
            .map_err(|e| SelectError::Worker(e.to_string()))?
    }

    /// Whether the run filter reads inputs or outputs: the runs it is
    /// given must carry them (a lean run reads as having none).
    pub fn needs_io(&self) -> bool {
        self.filter.as_ref().is_some_and(Filter::uses_io)
    }

    fn evaluate<R: Borrow<RunRecord>>(
        &self,
        runs: Vec<R>,
        own_feedback: &HashMap<RunId, Vec<Feedback>>,
        roots: Option<Loaded>,
        trees: Option<Loaded>,
        budget: &Budget,
    ) -> Result<Vec<R>, SelectError> {
        let passing = |filter: &Option<Filter>, loaded: Option<Loaded>, key: fn(&RunRecord) -> RunId| {
            let mut ok = HashSet::new();
            if let (Some(f), Some((runs, fb))) = (filter, loaded) {
                for r in &runs {
                    budget.check()?;
                    if f.matches(r, feedback(&fb, r.id)) {
                        ok.insert(key(r));
                    }
                }
            }
            Ok::<_, SelectError>(ok)
        };
        let roots_ok = passing(&self.trace_filter, roots, |r| r.id)?;
        let trees_ok = passing(&self.tree_filter, trees, |r| r.trace_id)?;
        let mut kept = Vec::new();
        for r in runs {
            budget.check()?;
            let run = r.borrow();
            if self.filter.as_ref().is_none_or(|f| f.matches(run, feedback(own_feedback, run.id)))
                && (self.trace_filter.is_none() || roots_ok.contains(&run.trace_id))
                && (self.tree_filter.is_none() || trees_ok.contains(&run.trace_id))
            {
                kept.push(r);
            }
        }
        Ok(kept)
    }
}

/// Runs a filter is evaluated on, with their feedback when it needs it.
type Loaded = (Vec<RunRecord>, HashMap<RunId, Vec<Feedback>>);

async fn with_feedback(store: &dyn RunStore, f: &Filter, runs: Vec<RunRecord>) -> Result<Loaded, StoreError> {
    let fb = if f.uses_feedback() { by_run(store.feedback_for_runs(&ids(&runs)).await?) } else { HashMap::new() };
    Ok((runs, fb))
}

/// Why a selection stopped without an answer.
#[derive(Debug, thiserror::Error)]
pub enum SelectError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The evaluation ran past its deadline.
    #[error("evaluating the filters took longer than the deadline of {} ms", .0.as_millis())]
    Deadline(Duration),
    /// Whoever asked is gone (a client that disconnected).
    #[error("the request was abandoned")]
    Abandoned,
    /// The evaluating thread failed.
    #[error("filter evaluation failed: {0}")]
    Worker(String),
}

/// How much evaluation may cost: a deadline, and a flag raised when the
/// caller goes away (see [`Budget::abandon_on_drop`]).
#[derive(Debug, Clone)]
pub struct Budget {
    deadline: Option<(Instant, Duration)>,
    abandoned: Arc<AtomicBool>,
}

impl Budget {
    /// No deadline (a rule's cycle: it runs on its own task and time).
    pub fn unlimited() -> Self {
        Self { deadline: None, abandoned: Arc::default() }
    }

    /// At most `limit` from now.
    pub fn within(limit: Duration) -> Self {
        Self { deadline: Some((Instant::now() + limit, limit)), abandoned: Arc::default() }
    }

    /// A guard that marks the budget spent when dropped: held by a request
    /// handler, whose future is dropped when its client disconnects.
    pub fn abandon_on_drop(&self) -> AbandonOnDrop {
        AbandonOnDrop(self.abandoned.clone())
    }

    fn check(&self) -> Result<(), SelectError> {
        let stopped = |reason: &'static str| {
            metrics::counter!("runhook_filter_evaluations_stopped_total", "reason" => reason).increment(1);
        };
        if self.abandoned.load(Ordering::Relaxed) {
            stopped("abandoned");
            return Err(SelectError::Abandoned);
        }
        match self.deadline {
            Some((at, limit)) if Instant::now() >= at => {
                stopped("deadline");
                Err(SelectError::Deadline(limit))
            }
            _ => Ok(()),
        }
    }
}

/// Raises its budget's abandoned flag when dropped.
#[derive(Debug)]
pub struct AbandonOnDrop(Arc<AtomicBool>);

impl Drop for AbandonOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

fn ids(runs: &[RunRecord]) -> Vec<RunId> {
    runs.iter().map(|r| r.id).collect()
}

fn by_run(all: Vec<Feedback>) -> HashMap<RunId, Vec<Feedback>> {
    let mut map: HashMap<RunId, Vec<Feedback>> = HashMap::new();
    for f in all {
        if let Some(run) = f.run_id {
            map.entry(run).or_default().push(f);
        }
    }
    map
}

fn feedback(map: &HashMap<RunId, Vec<Feedback>>, run: RunId) -> &[Feedback] {
    map.get(&run).map(Vec::as_slice).unwrap_or(&[])
}
