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
//! | 2 | [`plugins`] | load, sandbox and call WebAssembly plugins; hot reload |
//! | 4 | [`cli`] | the command-line tools: `plugin check`, `plugin run`, `bench` |

pub mod cli;
pub mod plugins;

#[cfg(test)]
mod layering;
