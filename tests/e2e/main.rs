//! runhook's end-to-end suite: the real binary and the real library, with
//! plugins built from source in `plugins/rust` on first use.
//!
//! One test binary, modules per surface, shared helpers in `common`.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs, unreachable_pub)]

mod alerts;
mod api_input;
mod claims;
mod common;
mod dashboard_api;
mod delivery_faults;
mod formats;
mod hardening;
mod keys;
mod languages;
mod large_payloads;
mod many_rules;
mod migrate;
mod ops;
mod plugin_cli;
mod plugin_host;
mod plugin_upload;
mod replicas;
mod rule_dataset;
mod rule_ops;
mod thread_rules;
mod trial;
mod wakeups;
