//! Log lines from a plugin, written to the runhook log under its name.
//!
//! The host keeps at most 100 lines of up to 4 KiB per call; logging never
//! fails and never blocks.

use std::sync::OnceLock;

/// Severity of a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Very detailed tracing.
    Trace,
    /// Debugging detail.
    Debug,
    /// Normal operation.
    Info,
    /// Something looks wrong but the plugin carried on.
    Warn,
    /// The plugin failed at something.
    Error,
}

/// The host import, installed by `export!` before the plugin's code runs.
#[doc(hidden)]
pub type Sink = fn(Level, &str);

static SINK: OnceLock<Sink> = OnceLock::new();

pub(crate) fn install(sink: Sink) {
    let _ = SINK.set(sink);
}

/// Writes `message` at `level`.
pub fn log(level: Level, message: &str) {
    if let Some(sink) = SINK.get() {
        sink(level, message);
    }
}

/// Writes `message` at debug level.
pub fn debug(message: &str) {
    log(Level::Debug, message);
}

/// Writes `message` at info level.
pub fn info(message: &str) {
    log(Level::Info, message);
}

/// Writes `message` at warn level.
pub fn warn(message: &str) {
    log(Level::Warn, message);
}

/// Writes `message` at error level.
pub fn error(message: &str) {
    log(Level::Error, message);
}
