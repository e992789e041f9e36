//! Window pages shared by the rules of a project: one store read serves
//! every rule whose window it covers.
//!
//! A page is what [`runhook_store::RuleStore::window_runs`] returns for a
//! project after a change position, lean (no inputs, outputs, events,
//! serialized), up to the store's horizon when it was read. It covers every watermark from
//! the position it was read after up to its last run (its horizon when it
//! is the window's last page): a rule at such a watermark takes the runs
//! after it. Rules of one project woken by one commit all ask within a
//! moment, and the first to ask reads while the others wait for its read.
//! Rules that start from different watermarks (one created later, one
//! behind) converge: each adopts the horizon of the page it used.
//!
//! A page serves a rule only if it was read after the rule was woken
//! (`generation`, the project's change counter the rule saw at the start
//! of its cycle): every commit rung before it is then in the page. A rule
//! that fell behind (a slow plugin, a failing store write) finds no page
//! covering its watermark and reads its own, page by page, until it is
//! back among the others: it delays only itself.
//!
//! Pages also carry what several rules would otherwise each load: the
//! page's runs with their large fields (read once, when the first rule
//! whose filter reads inputs or outputs asks) and the rendered runs that
//! a rule selected (rendered once, reused by every rule selecting them).
//! Pages are dropped half a minute after a rule last used one (at most 128
//! per project are kept, the least recently used going first: about 100
//! MB of lean runs while many rules work through a backlog); a rule holding
//! one keeps it until its page is done.
//!
//! On Postgres the horizon can lag a commit that already rang (an older
//! transaction is still open): a last page that finds committed runs past
//! its horizon rings the project again a moment later, so those runs wait
//! for the older transaction, not for the rules' interval.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::OnceCell;

use crate::payload::{self, Needs, RenderedRun};
use runhook_core::model::{ChangeSeq, RunId, RunRecord, SessionId};
use runhook_store::{Store, StoreError};

/// Runs per page.
pub const PAGE: usize = 1000;

/// How long a page is kept after a rule last used it.
const KEEP: Duration = Duration::from_secs(30);

/// How soon rules look again at a window whose horizon was held back.
const HELD_BACK_RECHECK: Duration = Duration::from_millis(25);

/// Pages kept per project at most (the least recently used goes first):
/// a backlog this long is read once however far apart its rules drift.
const MOST_PAGES: usize = 128;

/// The shared pages of every project, and how many reads they took.
#[derive(Debug, Default)]
pub struct Windows {
    pages: Mutex<HashMap<SessionId, Vec<Arc<Slot>>>>,
    reads: AtomicU64,
}

/// A page being read or read.
#[derive(Debug)]
struct Slot {
    after: ChangeSeq,
    generation: u64,
    used_at: Mutex<Instant>,
    page: OnceCell<Arc<Page>>,
}

impl Slot {
    fn idle(&self) -> Duration {
        self.used_at.lock().unwrap_or_else(PoisonError::into_inner).elapsed()
    }
}

/// One read of a project's window.
#[derive(Debug)]
pub struct Page {
    after: ChangeSeq,
    /// The store's horizon when read: the page holds every change up to
    /// it, or up to its last run when it is full.
    upto: ChangeSeq,
    /// Fewer than [`PAGE`] runs: the window ends here.
    last: bool,
    /// The runs, oldest change first, lean.
    runs: Vec<Arc<RunRecord>>,
    /// The same runs with their large fields, when a rule needs them.
    full: OnceCell<HashMap<RunId, Arc<RunRecord>>>,
    /// Runs rendered for some rule, for the next rule selecting them.
    rendered: Mutex<HashMap<RunId, Arc<RenderedRun>>>,
}

impl Windows {
    /// Window reads so far (each a store read of up to [`PAGE`] runs).
    pub fn reads(&self) -> u64 {
        self.reads.load(Ordering::Relaxed)
    }

    /// The page of `project`'s window that holds what changed after
    /// `after`, read since the rule saw `generation`.
    pub async fn page(
        &self,
        store: &Arc<dyn Store>,
        project: SessionId,
        after: ChangeSeq,
        generation: u64,
    ) -> Result<Arc<Page>, StoreError> {
        // A page being read for another rule covers this one only if its
        // read started at or before `after` and the window holds runs
        // beyond it; after waiting for it, a rule it does not cover reads
        // its own.
        let mut shared = true;
        loop {
            let slot = self.slot(project, after, generation, shared);
            let page = slot
                .page
                .get_or_try_init(|| async {
                    let upto = store.change_seq().await?;
                    let runs = store.window_runs(project, slot.after, upto, PAGE).await?;
                    let last = runs.len() < PAGE;
                    // Runs committed past the horizon while an older
                    // transaction still open holds it back (Postgres; the
                    // embedded store's horizon never lags): their commit
                    // has rung already, so the project's rules are rung
                    // again shortly, until the horizon passes them.
                    if last
                        && store.horizon_lag().await? > Duration::ZERO
                        && !store.window_runs(project, upto, ChangeSeq::END, 1).await?.is_empty()
                    {
                        let signals = store.rule_signals().clone();
                        tokio::spawn(async move {
                            tokio::time::sleep(HELD_BACK_RECHECK).await;
                            signals.runs_changed(project);
                        });
                    }
                    self.reads.fetch_add(1, Ordering::Relaxed);
                    metrics::counter!("runhook_rule_window_reads_total").increment(1);
                    Ok::<_, StoreError>(Arc::new(Page {
                        after: slot.after,
                        upto,
                        last,
                        runs: runs.into_iter().map(Arc::new).collect(),
                        full: OnceCell::new(),
                        rendered: Mutex::default(),
                    }))
                })
                .await?;
            // A page read for this rule alone is its window, whatever it holds.
            if page.covers(after) || !shared {
                return Ok(page.clone());
            }
            shared = false;
        }
    }

    /// A slot whose page covers `after` for `generation` (one being read
    /// counts: from `after`, or from before it when `shared`), or a new one.
    fn slot(&self, project: SessionId, after: ChangeSeq, generation: u64, shared: bool) -> Arc<Slot> {
        let mut pages = self.pages.lock().unwrap_or_else(PoisonError::into_inner);
        // Every project's old pages go, so an idle project holds none.
        pages.retain(|_, slots| {
            slots.retain(|s| s.idle() < KEEP);
            !slots.is_empty()
        });
        let slots = pages.entry(project).or_default();
        // A read in flight from an earlier position may end before `after`
        // (`shared`, the first try); one from `after` itself always holds
        // its window. Of several, the closest below `after`.
        let usable = |s: &&Arc<Slot>| {
            s.generation >= generation
                && s.after <= after
                && match s.page.get() {
                    Some(page) => page.covers(after),
                    None => shared || s.after == after,
                }
        };
        if let Some(slot) = slots.iter().filter(usable).max_by_key(|s| s.after) {
            *slot.used_at.lock().unwrap_or_else(PoisonError::into_inner) = Instant::now();
            return slot.clone();
        }
        let slot = Arc::new(Slot { after, generation, used_at: Mutex::new(Instant::now()), page: OnceCell::new() });
        if slots.len() >= MOST_PAGES
            && let Some(lru) = slots.iter().enumerate().max_by_key(|(_, s)| s.idle()).map(|(i, _)| i)
        {
            slots.remove(lru);
        }
        slots.push(slot.clone());
        slot
    }
}

impl Page {
    /// Whether a rule at watermark `after` can take its window from here.
    fn covers(&self, after: ChangeSeq) -> bool {
        self.after <= after
            && match (self.last, self.runs.last()) {
                (true, _) => after <= self.upto,
                (false, Some(run)) => after < run.seq,
                (false, None) => false,
            }
    }

    /// The runs after watermark `after`, oldest change first.
    pub fn runs_after(&self, after: ChangeSeq) -> &[Arc<RunRecord>] {
        let from = self.runs.partition_point(|r| r.seq <= after);
        &self.runs[from..]
    }

    /// Where a rule at `after` moves its watermark once it has acted on
    /// this page's runs after it: to the last of them, not to the horizon,
    /// so that rules that started from different watermarks (rules created
    /// at different times, on Postgres where the horizon moves with every
    /// transaction) meet at the same one after their first shared run, and
    /// share every page from then on. Nothing is missed: no change at or
    /// below the horizon can commit later.
    pub fn moves_to(&self, after: ChangeSeq) -> ChangeSeq {
        self.runs.last().map_or(after, |run| run.seq.max(after))
    }

    /// Whether the window ends with this page (at its horizon).
    pub fn is_last(&self) -> bool {
        self.last
    }

    /// How far the store's window reached when this page was read.
    pub fn horizon(&self) -> ChangeSeq {
        self.upto
    }

    /// `runs` (of this page) with their inputs and outputs, read once for
    /// the whole page by the first rule that needs them.
    pub async fn with_io(
        &self,
        store: &Arc<dyn Store>,
        runs: &[Arc<RunRecord>],
    ) -> Result<Vec<Arc<RunRecord>>, StoreError> {
        let full = self
            .full
            .get_or_try_init(|| async {
                let ids: Vec<RunId> = self.runs.iter().map(|r| r.id).collect();
                let runs = store.runs_by_ids(&ids).await?;
                Ok::<_, StoreError>(runs.into_iter().map(|r| (r.id, Arc::new(r))).collect())
            })
            .await?;
        // A run deleted meanwhile keeps its lean record.
        Ok(runs.iter().map(|r| full.get(&r.id).cloned().unwrap_or_else(|| r.clone())).collect())
    }

    /// `runs` rendered as webhooks and plugins see them, beside their
    /// records: those another rule rendered from this page are reused, the
    /// rest are read whole and rendered. A run deleted since the page was
    /// read is left out.
    pub async fn render(
        &self,
        store: &Arc<dyn Store>,
        runs: Vec<Arc<RunRecord>>,
    ) -> Result<Vec<(Arc<RenderedRun>, Arc<RunRecord>)>, StoreError> {
        let missing: Vec<&Arc<RunRecord>> = {
            let rendered = self.rendered.lock().unwrap_or_else(PoisonError::into_inner);
            runs.iter().filter(|r| !rendered.contains_key(&r.id)).collect()
        };
        if !missing.is_empty() {
            // The whole runs, their trees and feedback are read at once.
            let ids: Vec<RunId> = missing.iter().map(|r| r.id).collect();
            let traces: Vec<RunId> = missing.iter().map(|r| r.trace_id).collect();
            let whole = async {
                match self.full.get() {
                    Some(full) => Ok(ids.iter().filter_map(|id| full.get(id).map(|r| RunRecord::clone(r))).collect()),
                    None => store.runs_by_ids(&ids).await,
                }
            };
            let derived = payload::Derived::load(store.as_ref(), &ids, &traces, Needs::ALL);
            let (whole, derived) = tokio::try_join!(whole, derived)?;
            let fresh = payload::render_with(store.tenant_id(), &whole, derived);
            let mut rendered = self.rendered.lock().unwrap_or_else(PoisonError::into_inner);
            for run in fresh {
                rendered.entry(run.id).or_insert_with(|| Arc::new(run));
            }
        }
        let rendered = self.rendered.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(runs.into_iter().filter_map(|r| rendered.get(&r.id).map(|x| (x.clone(), r))).collect())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use runhook_core::model::{RunType, RunWrite, Timestamp};

    fn at(n: i64) -> ChangeSeq {
        ChangeSeq::from_parts(0, n)
    }

    /// A page read after `after` up to the horizon `upto`, holding runs at `seqs`.
    fn page(after: i64, upto: i64, seqs: &[i64], last: bool) -> Page {
        let runs = seqs
            .iter()
            .map(|s| {
                let w = RunWrite {
                    name: Some("r".into()),
                    run_type: Some(RunType::Llm),
                    start_time: Some(Timestamp::now()),
                    ..RunWrite::default()
                };
                let mut run = RunRecord::create(RunId::new_v7(), SessionId::new_v4(), w, Timestamp::now()).unwrap();
                run.seq = at(*s);
                Arc::new(run)
            })
            .collect();
        Page { after: at(after), upto: at(upto), last, runs, full: OnceCell::new(), rendered: Mutex::default() }
    }

    #[test]
    fn a_last_page_covers_every_watermark_up_to_its_horizon() {
        let p = page(10, 50, &[12, 20, 31], true);
        assert!(!p.covers(at(9)), "before the read");
        for w in [10, 12, 25, 31, 40, 50] {
            assert!(p.covers(at(w)), "{w}");
        }
        assert!(!p.covers(at(51)), "past the horizon");
        assert_eq!(p.runs_after(at(12)).len(), 2);
        assert!(p.runs_after(at(31)).is_empty());
        // Rules move to the last run, so rules from 10 and from 25 meet at 31.
        assert_eq!((p.moves_to(at(10)), p.moves_to(at(25)), p.moves_to(at(40))), (at(31), at(31), at(40)));
        let empty = page(10, 50, &[], true);
        assert_eq!(empty.moves_to(at(20)), at(20));
    }

    #[test]
    fn a_full_page_covers_watermarks_before_its_last_run() {
        let p = page(10, 50, &[12, 20, 31], false);
        assert!(p.covers(at(20)) && p.covers(at(30)));
        assert!(!p.covers(at(31)), "the next page holds what follows");
        assert_eq!(p.moves_to(at(10)), at(31));
    }
}
