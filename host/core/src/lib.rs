//! runhook's shared vocabulary: plain values every other crate speaks, no I/O.
//!
//! - [`model`]: ids, timestamps, runs, feedback, projects and rules, with the
//!   LangSmith wire shapes (what the SDK posts, what readers get back).
//! - [`filter`]: the LangSmith filter language: lex, parse, type-check and
//!   evaluate against a run and its feedback.
//! - [`secrets`]: the keyring that seals webhook URLs, header values and
//!   signing secrets at rest (AEAD with key ids, for rotation).
//!
//! Why one crate: the three change rarely and together, and everything above
//! (the store, the server, the benchmarks) needs them; nothing here knows
//! about storage, HTTP or plugins.

// The run view is one large `json!` literal.
#![recursion_limit = "256"]

pub mod filter;
pub mod model;
pub mod secrets;
