//! runhook's service: the HTTP API, the rule engine and the webhook delivery
//! worker, over any store.
//!
//! Runs arrive over the LangSmith wire protocol, rules poll for new runs that
//! match a filter, and each match is delivered as a webhook; per-rule logic is
//! customised by WebAssembly components (`runhook-plugins`).
//!
//! This crate takes its store as a trait object (`runhook-store`) and names no
//! backend: the `runhook` binary chooses one and hands it to [`app::App`].
//! api, rules and delivery live in one crate because they change together;
//! the data still flows one way, api -> store -> rules -> plugins/delivery,
//! and a module imports only from lower layers (checked by the `layering`
//! test below). The API sits above the rules module to share its rule
//! definitions; the two still meet only in the store for everything a rule
//! does:
//!
//! | layer | module | job |
//! |---|---|---|
//! | 0 | [`config`] | the service configuration, validated once |
//! | 1 | [`links`] | signed links: reads without the API key, until they expire |
//! | 2 | [`select`] | `filter`, `trace_filter`, `tree_filter` evaluated with the store |
//! | 2 | [`delivery`] | the webhook sender draining the outbox |
//! | 2 | [`plugins`] | the plugins rules and alerts use: where each comes from, loading, calls, message formats |
//! | 2 | [`payload`] | the webhook payload and run rendering, as LangSmith's doc shows it |
//! | 3 | [`rules`] | rule definitions, the scheduler and the per-rule action pipeline |
//! | 3 | [`alerts`] | alert rules: a metric over recent runs, its states and notifications |
//! | 4 | [`api`] | the HTTP API: LangSmith-compatible ingest and reads, health; connection limits |
//! | 5 | [`app`] | wires store, API and workers together; owns shutdown |
//!
//! Below them, in crates of their own: `runhook-core` (model, filter
//! language, secrets; layer 0), `runhook-store` (the store contract; layer
//! 1), `runhook-wire` (request bodies decoded within limits; layer 2) and
//! `runhook-plugins` (the wasmtime host; layer 2).

// The run view is one large `json!` literal.
#![recursion_limit = "256"]

pub mod alerts;
pub mod api;
pub mod app;
pub mod config;
pub mod delivery;
pub mod links;
pub mod payload;
pub mod plugins;
pub mod rules;
pub mod select;

#[cfg(test)]
mod layering;
