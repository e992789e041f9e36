//! runhook: automation rules for LLM-application traces, with WebAssembly plugins.
//!
//! Runs arrive over the LangSmith wire protocol, rules poll for new runs that
//! match a filter, and each match is delivered as a webhook; per-rule logic is
//! customised by WebAssembly components loaded at run time.
//!
//! Module map (data flows api -> store -> rules -> plugins/delivery; a module
//! imports only from lower layers, checked by the `layering` test below):
//!
//! | layer | module | job |
//! |---|---|---|
//! | 0 | [`model`] | ids, timestamps, runs, feedback, projects: plain values |
//! | 0 | [`config`] | the service configuration, validated once |
//! | 1 | [`store`] | the `Store` trait and the embedded SQLite store |
//! | 1 | [`filter`] | the LangSmith filter language: parse, type-check, evaluate |
//! | 2 | [`select`] | `filter`, `trace_filter`, `tree_filter` evaluated with the store |
//! | 2 | [`plugins`] | load, sandbox and call WebAssembly plugins; hot reload |
//! | 2 | [`delivery`] | the webhook sender draining the outbox |
//! | 2 | [`payload`] | the webhook payload and run rendering, as LangSmith's doc shows it |
//! | 3 | [`rules`] | the scheduler and the per-rule action pipeline |
//! | 3 | [`api`] | the HTTP API: LangSmith-compatible ingest and reads, health |
//! | 4 | [`app`] | wires store, API and workers together; owns shutdown |
//! | 5 | [`cli`] | the command line: `serve`, `plugin check`, `plugin run`, `bench` |

// The run view is one large `json!` literal.
#![recursion_limit = "256"]

pub mod api;
pub mod app;
pub mod cli;
pub mod config;
pub mod delivery;
pub mod filter;
pub mod model;
pub mod payload;
pub mod plugins;
pub mod rules;
pub mod secrets;
pub mod select;
pub mod store;

#[cfg(test)]
mod layering;
