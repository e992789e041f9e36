//! The run fields a filter can name, and what type each has.

/// A filterable field of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    /// `id`
    Id,
    /// `trace_id`
    TraceId,
    /// `parent_run_id`
    ParentRunId,
    /// `name`
    Name,
    /// `run_type`
    RunType,
    /// `status`: success, error, pending
    Status,
    /// `error`
    Error,
    /// `start_time`
    StartTime,
    /// `end_time`
    EndTime,
    /// `latency`, seconds
    Latency,
    /// `total_tokens`
    TotalTokens,
    /// `prompt_tokens`
    PromptTokens,
    /// `completion_tokens`
    CompletionTokens,
    /// `total_cost`
    TotalCost,
    /// `prompt_cost`
    PromptCost,
    /// `completion_cost`
    CompletionCost,
    /// `first_token_time`
    FirstTokenTime,
    /// `tags`
    Tags,
    /// `is_root`
    IsRoot,
    /// `thread_id`
    ThreadId,
    /// `session_id`
    SessionId,
    /// `reference_example_id`
    ReferenceExampleId,
    /// `execution_order` (deprecated; always 1)
    ExecutionOrder,
    /// `metadata`, the whole blob (for `has` and `exists`)
    Metadata,
    /// A key/value family member: `metadata_key`, `input_value`, `feedback_score` ...
    Pair(Family, Part),
}

/// The key/value families whose key and value conditions pair up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// `extra.metadata`, flattened with dots.
    Metadata,
    /// `inputs`, flattened with dots.
    Input,
    /// `outputs`, flattened with dots.
    Output,
    /// The run's feedback.
    Feedback,
}

/// Which member of a family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Part {
    /// `*_key`
    Key,
    /// `*_value`
    Value,
    /// `feedback_score`
    Score,
}

/// What values a field holds, which decides the operators that apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A UUID (compared as text, validated at compile time).
    Uuid,
    /// Free text.
    Text,
    /// One of a fixed set of words.
    Word(&'static [&'static str]),
    /// A point in time.
    Time,
    /// Seconds (numbers or durations like "5s").
    Seconds,
    /// A number.
    Number,
    /// A list of strings.
    Tags,
    /// true or false.
    Bool,
    /// A JSON blob (metadata).
    Blob,
    /// A key of a family.
    Key,
    /// Any JSON value (family values).
    Any,
}

/// Every field name the language knows, with its field.
pub const FIELDS: &[(&str, Field)] = &[
    ("id", Field::Id),
    ("trace_id", Field::TraceId),
    ("parent_run_id", Field::ParentRunId),
    ("name", Field::Name),
    ("run_type", Field::RunType),
    ("status", Field::Status),
    ("error", Field::Error),
    ("start_time", Field::StartTime),
    ("end_time", Field::EndTime),
    ("latency", Field::Latency),
    ("total_tokens", Field::TotalTokens),
    ("prompt_tokens", Field::PromptTokens),
    ("completion_tokens", Field::CompletionTokens),
    ("total_cost", Field::TotalCost),
    ("prompt_cost", Field::PromptCost),
    ("completion_cost", Field::CompletionCost),
    ("first_token_time", Field::FirstTokenTime),
    ("tags", Field::Tags),
    ("is_root", Field::IsRoot),
    ("thread_id", Field::ThreadId),
    ("session_id", Field::SessionId),
    ("reference_example_id", Field::ReferenceExampleId),
    ("execution_order", Field::ExecutionOrder),
    ("metadata", Field::Metadata),
    ("metadata_key", Field::Pair(Family::Metadata, Part::Key)),
    ("metadata_value", Field::Pair(Family::Metadata, Part::Value)),
    ("input_key", Field::Pair(Family::Input, Part::Key)),
    ("input_value", Field::Pair(Family::Input, Part::Value)),
    ("output_key", Field::Pair(Family::Output, Part::Key)),
    ("output_value", Field::Pair(Family::Output, Part::Value)),
    ("feedback_key", Field::Pair(Family::Feedback, Part::Key)),
    ("feedback_score", Field::Pair(Family::Feedback, Part::Score)),
    ("feedback_value", Field::Pair(Family::Feedback, Part::Value)),
];

const RUN_TYPES: &[&str] = &["tool", "chain", "llm", "retriever", "embedding", "prompt", "parser"];
const STATUSES: &[&str] = &["success", "error", "pending", "interrupted"];

impl Field {
    /// Looks a field up by name.
    pub fn parse(name: &str) -> Option<Field> {
        FIELDS.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
    }

    /// The field's name in the language.
    pub fn name(self) -> &'static str {
        FIELDS.iter().find(|(_, f)| *f == self).map(|(n, _)| *n).unwrap_or("?")
    }

    /// The field's kind.
    pub fn kind(self) -> Kind {
        match self {
            Field::Id | Field::TraceId | Field::ParentRunId | Field::SessionId | Field::ReferenceExampleId => {
                Kind::Uuid
            }
            Field::Name | Field::Error | Field::ThreadId => Kind::Text,
            Field::RunType => Kind::Word(RUN_TYPES),
            Field::Status => Kind::Word(STATUSES),
            Field::StartTime | Field::EndTime | Field::FirstTokenTime => Kind::Time,
            Field::Latency => Kind::Seconds,
            Field::TotalTokens
            | Field::PromptTokens
            | Field::CompletionTokens
            | Field::TotalCost
            | Field::PromptCost
            | Field::CompletionCost
            | Field::ExecutionOrder => Kind::Number,
            Field::Tags => Kind::Tags,
            Field::IsRoot => Kind::Bool,
            Field::Metadata => Kind::Blob,
            Field::Pair(_, Part::Key) => Kind::Key,
            Field::Pair(_, Part::Score) => Kind::Number,
            Field::Pair(_, Part::Value) => Kind::Any,
        }
    }

    /// Whether the field can be null (so `eq(f, null)` makes sense).
    pub fn nullable(self) -> bool {
        matches!(
            self,
            Field::ParentRunId
                | Field::Error
                | Field::EndTime
                | Field::Latency
                | Field::FirstTokenTime
                | Field::ThreadId
                | Field::ReferenceExampleId
                | Field::TotalCost
                | Field::PromptCost
                | Field::CompletionCost
                | Field::Pair(_, Part::Value | Part::Score)
        )
    }

    /// How the kind reads in an error message.
    pub fn describe(self) -> String {
        match self.kind() {
            Kind::Uuid => "a UUID".into(),
            Kind::Text => "text".into(),
            Kind::Word(words) => format!("one of {}", words.join(", ")),
            Kind::Time => "a timestamp".into(),
            Kind::Seconds => "a duration (seconds, or \"5s\", \"250ms\", \"2m\", \"1h\")".into(),
            Kind::Number => "a number".into(),
            Kind::Tags => "a list of tags".into(),
            Kind::Bool => "true or false".into(),
            Kind::Blob => "a JSON object".into(),
            Kind::Key => "a key".into(),
            Kind::Any => "any JSON value".into(),
        }
    }
}
