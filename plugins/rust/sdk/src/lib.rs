//! Write runhook plugins in Rust.
//!
//! A runhook plugin customises one automation rule: a **matcher** decides
//! whether a run matches, a **transformer** rewrites the webhook payload, an
//! **evaluator** turns a run into feedback. Implement the trait of each
//! capability your plugin provides, then export the type once:
//!
//! ```ignore
//! use runhook_plugin::{Matcher, Value};
//!
//! struct ErroredLlmRuns;
//!
//! impl Matcher for ErroredLlmRuns {
//!     fn matches(run: &Value, _config: &Value) -> Result<bool, String> {
//!         Ok(run["run_type"] == "llm" && !run["error"].is_null())
//!     }
//! }
//!
//! runhook_plugin::export!(ErroredLlmRuns: matcher);
//! ```
//!
//! Capabilities are listed in the order `matcher, transformer, evaluator`;
//! any non-empty subset works (`export!(T: matcher, evaluator)`). The
//! resulting component exports exactly those interfaces of the
//! `runhook:plugin` WIT package, so the host knows what the plugin can do.
//!
//! Build with `cargo build --target wasm32-wasip2 --release`; the `.wasm` in
//! `target/wasm32-wasip2/release/` is the plugin.
//!
//! Runs, payloads and configs arrive as [`serde_json::Value`]: the run object
//! is the one the webhook payload carries, and the config is whatever JSON the
//! rule gives the plugin (`Value::Null` when it gives none). Write log lines
//! with [`log`]; they appear in the runhook log under the plugin's name.

pub use serde_json::{self, Value, json};

mod feedback;
pub mod log;

pub use feedback::Feedback;

/// Decides whether a run matches the rule (after the rule's filters).
pub trait Matcher {
    /// `Ok(true)` selects the run; `Err` means the plugin could not decide,
    /// and the message lands in the rule's log.
    fn matches(run: &Value, config: &Value) -> Result<bool, String>;
}

/// Rewrites the webhook payload `{rule_id, start_time, end_time, runs,
/// feedback_stats}` into the body that is delivered.
pub trait Transformer {
    /// Returns the body to deliver; any JSON value.
    fn transform(payload: Value, config: &Value) -> Result<Value, String>;
}

/// Evaluates a run into feedback, like an online evaluator.
pub trait Evaluator {
    /// Returns the feedback to attach to the run (possibly none).
    fn evaluate(run: &Value, config: &Value) -> Result<Vec<Feedback>, String>;
}

/// Exports a type as a runhook plugin with the listed capabilities.
///
/// See the crate documentation for an example.
#[macro_export]
macro_rules! export {
    ($ty:ty : matcher) => {
        $crate::__export!($ty; "package runhook:guest; world guest { include runhook:plugin/match-plugin@0.1.0; }"; matcher);
    };
    ($ty:ty : transformer) => {
        $crate::__export!($ty; "package runhook:guest; world guest { include runhook:plugin/transform-plugin@0.1.0; }"; transformer);
    };
    ($ty:ty : evaluator) => {
        $crate::__export!($ty; "package runhook:guest; world guest { include runhook:plugin/evaluate-plugin@0.1.0; }"; evaluator);
    };
    ($ty:ty : matcher, transformer) => {
        $crate::__export!($ty; "package runhook:guest; world guest { include runhook:plugin/match-plugin@0.1.0; include runhook:plugin/transform-plugin@0.1.0; }"; matcher, transformer);
    };
    ($ty:ty : matcher, evaluator) => {
        $crate::__export!($ty; "package runhook:guest; world guest { include runhook:plugin/match-plugin@0.1.0; include runhook:plugin/evaluate-plugin@0.1.0; }"; matcher, evaluator);
    };
    ($ty:ty : transformer, evaluator) => {
        $crate::__export!($ty; "package runhook:guest; world guest { include runhook:plugin/transform-plugin@0.1.0; include runhook:plugin/evaluate-plugin@0.1.0; }"; transformer, evaluator);
    };
    ($ty:ty : matcher, transformer, evaluator) => {
        $crate::__export!($ty; "package runhook:guest; world guest { include runhook:plugin/plugin@0.1.0; }"; matcher, transformer, evaluator);
    };
}

include!(concat!(env!("OUT_DIR"), "/generate.rs"));

/// Generates the bindings in the plugin's crate and wires each capability.
#[doc(hidden)]
#[macro_export]
macro_rules! __export {
    ($ty:ty; $wit:literal; $($cap:ident),+) => {
        #[doc(hidden)]
        #[allow(missing_docs, unsafe_op_in_unsafe_fn, clippy::all)]
        mod __runhook_bindings {
            $crate::__runhook_generate!($wit);
        }

        #[doc(hidden)]
        struct __RunhookExport;

        fn __runhook_log(level: $crate::log::Level, message: &str) {
            use __runhook_bindings::runhook::plugin::host::{log, Level as L};
            let level = match level {
                $crate::log::Level::Trace => L::Trace,
                $crate::log::Level::Debug => L::Debug,
                $crate::log::Level::Info => L::Info,
                $crate::log::Level::Warn => L::Warn,
                $crate::log::Level::Error => L::Error,
            };
            log(level, message);
        }

        $( $crate::__impl_capability!($cap, $ty); )+

        __runhook_bindings::export!(__RunhookExport with_types_in __runhook_bindings);
    };
}

/// Implements one generated `Guest` trait by delegating to the SDK trait.
#[doc(hidden)]
#[macro_export]
macro_rules! __impl_capability {
    (matcher, $ty:ty) => {
        impl __runhook_bindings::exports::runhook::plugin::matcher::Guest for __RunhookExport {
            fn matches(run: String, config: String) -> Result<bool, String> {
                $crate::__private::matches::<$ty>(__runhook_log, &run, &config)
            }
        }
    };
    (transformer, $ty:ty) => {
        impl __runhook_bindings::exports::runhook::plugin::transformer::Guest for __RunhookExport {
            fn transform(payload: String, config: String) -> Result<String, String> {
                $crate::__private::transform::<$ty>(__runhook_log, &payload, &config)
            }
        }
    };
    (evaluator, $ty:ty) => {
        impl __runhook_bindings::exports::runhook::plugin::evaluator::Guest for __RunhookExport {
            fn evaluate(run: String, config: String) -> Result<String, String> {
                $crate::__private::evaluate::<$ty>(__runhook_log, &run, &config)
            }
        }
    };
}

/// Glue used by the macros; not part of the public API.
#[doc(hidden)]
pub mod __private {
    pub use wit_bindgen;

    use crate::{Evaluator, Matcher, Transformer, Value, log};

    fn parse(what: &str, text: &str) -> Result<Value, String> {
        if text.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(text).map_err(|e| format!("the host sent invalid {what} JSON: {e}"))
    }

    pub fn matches<T: Matcher>(sink: log::Sink, run: &str, config: &str) -> Result<bool, String> {
        log::install(sink);
        T::matches(&parse("run", run)?, &parse("config", config)?)
    }

    pub fn transform<T: Transformer>(sink: log::Sink, payload: &str, config: &str) -> Result<String, String> {
        log::install(sink);
        let out = T::transform(parse("payload", payload)?, &parse("config", config)?)?;
        serde_json::to_string(&out).map_err(|e| format!("cannot serialise the payload: {e}"))
    }

    pub fn evaluate<T: Evaluator>(sink: log::Sink, run: &str, config: &str) -> Result<String, String> {
        log::install(sink);
        let out = T::evaluate(&parse("run", run)?, &parse("config", config)?)?;
        serde_json::to_string(&out).map_err(|e| format!("cannot serialise the feedback: {e}"))
    }
}
