//! Automation rules: their definitions, the scheduler and the per-rule
//! action pipeline.
//!
//! [`definition`] checks what a client says a rule is (shared by the API
//! and the config file); [`scheduler`] gives every enabled rule its own
//! task, woken by its project's commits or its interval; [`pipeline`] runs
//! one cycle (window, filters, match plugin, sampling, webhook and
//! evaluator actions, one commit per page); [`window`] shares the pages of
//! a project's window among its rules; `threads` holds a thread rule's
//! runs until their thread is idle, then acts on the thread; [`sample`] is the deterministic
//! sampling draw; [`trial`] runs a rule that is not saved over stored runs,
//! sending and storing nothing. Webhooks leave through outbox rows in the
//! store, which the delivery worker sends: rules never talk to receivers.
//!
//! Layering: layer 3; imports `select`, `payload`, `plugins`, `delivery` (only the
//! webhook checks a definition makes: reserved headers, the network guard)
//! and the crates below; never `api`. The engine hands webhooks to the
//! delivery worker through outbox rows only.

pub mod dataset;
pub mod definition;
pub mod pipeline;
pub mod sample;
pub mod scheduler;
mod threads;
pub mod trial;
pub mod window;
