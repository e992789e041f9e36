//! The LangSmith filter language: parse once, evaluate per run.
//!
//! Rules and `POST /runs/query` select runs with the filters users paste
//! from LangSmith's docs and UI: the call syntax
//! (`and(eq(run_type, "llm"), neq(error, null))`) and the infix form of the
//! webhook docs (`has(feedback_key, "answer_usefulness") and feedback_score
//! < 0.5`), mixed freely. [`Filter::parse`] lexes, parses and type-checks in
//! one go and reports the first problem with its position, a caret under
//! the filter text, and what was expected; [`Filter::matches`] evaluates the
//! compiled form against a run and its feedback.
//!
//! Pipeline: `lexer` (tokens) -> `parser` (untyped tree) -> `compile`
//! (typed expression, key/value pairing) -> `eval`.
//!
//! `trace_filter` and `tree_filter` evaluate the same filters on a run's
//! root, or on every run of its trace; the caller fetches those runs.
//!
//! Layering: layer 1; imports `model` only.

mod compile;
mod eval;
pub mod fields;
mod lexer;
mod like;
mod parser;

use std::fmt;

use crate::model::{Feedback, RunRecord};

/// Longest filter accepted, in bytes.
pub const MAX_FILTER_LEN: usize = 16 * 1024;

/// A compiled filter.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    source: String,
    expr: compile::Expr,
}

/// Why a filter is invalid: where, and what was expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterError {
    /// Character offset of the problem in the filter text.
    pub position: usize,
    /// What is wrong.
    pub message: String,
    /// The filter text.
    pub filter: String,
}

impl FilterError {
    pub(crate) fn at(src: &str, byte_offset: usize, message: String) -> Self {
        let offset = byte_offset.min(src.len());
        let position = src.char_indices().take_while(|(i, _)| *i < offset).count();
        Self { position, message, filter: src.to_string() }
    }
}

impl fmt::Display for FilterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // One line of context, with the caret under the problem; long
        // filters are windowed around it.
        let chars: Vec<char> = self.filter.chars().map(|c| if c.is_whitespace() { ' ' } else { c }).collect();
        let start = self.position.saturating_sub(60);
        let end = (self.position + 60).min(chars.len());
        let window: String = chars[start.min(end)..end].iter().collect();
        let caret = " ".repeat(self.position - start.min(self.position));
        write!(f, "invalid filter at position {}: {}\n  {}\n  {}^", self.position, self.message, window, caret)
    }
}

impl std::error::Error for FilterError {}

impl Filter {
    /// Parses and type-checks `text`.
    pub fn parse(text: &str) -> Result<Self, FilterError> {
        if text.len() > MAX_FILTER_LEN {
            return Err(FilterError {
                position: 0,
                message: format!("filter is longer than {MAX_FILTER_LEN} bytes"),
                filter: String::new(),
            });
        }
        let tokens = lexer::lex(text)?;
        let tree = parser::parse(text, tokens)?;
        let expr = compile::compile(text, &tree)?;
        Ok(Self { source: text.to_string(), expr })
    }

    /// The filter text as given.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Whether `run` (with `feedback`, its feedback) matches.
    pub fn matches(&self, run: &RunRecord, feedback: &[Feedback]) -> bool {
        eval::eval(&self.expr, run, feedback)
    }

    /// Whether the filter reads feedback (so callers need to load it).
    pub fn uses_feedback(&self) -> bool {
        self.expr.reads_feedback()
    }

    /// Whether the filter reads inputs or outputs (`search`, `input_key`,
    /// `output_value` ...), so callers need the runs' large fields.
    pub fn uses_io(&self) -> bool {
        self.expr.reads_io()
    }
}

#[cfg(test)]
mod tests;
