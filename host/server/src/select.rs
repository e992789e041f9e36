//! Selecting runs with the three LangSmith filters, using the store for
//! what a run alone cannot answer.
//!
//! `filter` is evaluated on the run itself, `trace_filter` on the root of
//! its trace, `tree_filter` on every run of its trace (any may match); all
//! three must hold. Feedback, roots and trees are loaded once per batch of
//! candidates, only when a filter needs them.
//!
//! Layering: layer 2; imports `model`, `store`, `filter`.

use std::collections::{HashMap, HashSet};

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

    /// Keeps the runs that pass all three filters, in order.
    pub async fn retain(&self, store: &dyn RunStore, runs: Vec<RunRecord>) -> Result<Vec<RunRecord>, StoreError> {
        if self.is_empty() || runs.is_empty() {
            return Ok(runs);
        }
        let own_feedback = match &self.filter {
            Some(f) if f.uses_feedback() => by_run(store.feedback_for_runs(&ids(&runs)).await?),
            _ => HashMap::new(),
        };
        let mut traces: Vec<RunId> = runs.iter().map(|r| r.trace_id).collect();
        traces.sort_unstable();
        traces.dedup();
        // Roots: trace ids are root run ids.
        let roots_ok: HashSet<RunId> = match &self.trace_filter {
            None => HashSet::new(),
            Some(f) => {
                let roots = store.runs_by_ids(&traces).await?;
                let fb = if f.uses_feedback() {
                    by_run(store.feedback_for_runs(&ids(&roots)).await?)
                } else {
                    HashMap::new()
                };
                roots.iter().filter(|r| f.matches(r, feedback(&fb, r.id))).map(|r| r.id).collect()
            }
        };
        let trees_ok: HashSet<RunId> = match &self.tree_filter {
            None => HashSet::new(),
            Some(f) => {
                let all = store.runs_in_traces(&traces).await?;
                let fb =
                    if f.uses_feedback() { by_run(store.feedback_for_runs(&ids(&all)).await?) } else { HashMap::new() };
                all.iter().filter(|r| f.matches(r, feedback(&fb, r.id))).map(|r| r.trace_id).collect()
            }
        };
        Ok(runs
            .into_iter()
            .filter(|r| {
                self.filter.as_ref().is_none_or(|f| f.matches(r, feedback(&own_feedback, r.id)))
                    && (self.trace_filter.is_none() || roots_ok.contains(&r.trace_id))
                    && (self.tree_filter.is_none() || trees_ok.contains(&r.trace_id))
            })
            .collect())
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
