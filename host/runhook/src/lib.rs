//! The `runhook` binary's library: the command line, and the one place
//! where a store backend is chosen and opened.
//!
//! - [`cli`]: each subcommand's arguments and what it runs.
//! - [`backend`]: opens the data directory and its store, and hands the
//!   store to the server as a trait object. This is the only crate that
//!   names a backend (`runhook-store-sqlite` today); the server and
//!   everything below it know only the store contract (`runhook-store`).

pub mod backend;
pub mod cli;
