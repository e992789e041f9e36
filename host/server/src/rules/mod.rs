//! Automation rules: the scheduler and the per-rule action pipeline.
//!
//! [`scheduler`] gives every enabled rule its own task and interval;
//! [`pipeline`] runs one cycle (window, filters, match plugin, sampling,
//! webhook and evaluator actions, one commit); [`sample`] is the
//! deterministic sampling draw. Webhooks leave through outbox rows in the
//! store, which the delivery worker sends: rules never talk to receivers.
//!
//! Layering: layer 3; imports `model`, `store`, `filter`, `select`,
//! `payload`, `plugins`; never `api` or `delivery`.

pub mod pipeline;
pub mod sample;
pub mod scheduler;
