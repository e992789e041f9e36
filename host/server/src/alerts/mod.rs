//! Alert rules: a metric over a project's recent runs against thresholds,
//! evaluated at least every minute, notifying when it gets worse, while
//! it stays bad (reminders) and when it recovers.
//!
//! [`state`] is one evaluation's decision (levels, incidents, reminders),
//! a pure function of the definition, the stored state, the value and the
//! time; [`metric`] computes the value from the window's runs, which
//! [`read`] reads a page at a time through the alert's filter;
//! [`definition`] checks what a client says an alert is; [`evaluate`]
//! evaluates saved alerts when due and commits their notifications to the
//! outbox; [`backtest`] evaluates an alert over the stored runs of the last
//! hours.
//!
//! Layering: layer 3, beside `rules`; imports the crates below.

pub mod backtest;
pub mod definition;
pub mod evaluate;
pub mod metric;
pub mod read;
pub mod state;
