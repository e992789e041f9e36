//! The shared vocabulary: ids, timestamps, runs, feedback, projects,
//! datasets and their examples.
//!
//! Plain values with no I/O, used by every layer above. Wire shapes that
//! LangSmith defines (what the SDK posts, what readers get back) live here
//! too, so the store and the API agree on them without importing each other.
//!
//! Layering: layer 0; imports nothing from the crate.

pub mod alert;
pub mod dataset;
pub mod definition;
pub mod feedback;
pub mod ids;
pub mod plugin;
pub mod rule;
pub mod run;
pub mod seq;
pub mod session;
pub mod signals;
pub mod time;
pub mod view;

pub use dataset::{Dataset, Example};
pub use definition::RuleDefinition;
pub use feedback::{Feedback, FeedbackCreate, FeedbackSource};
pub use ids::{
    AlertId, DatasetId, DeliveryId, ExampleId, FeedbackId, QueueId, RuleId, RunId, SessionId, TenantId, WebhookId,
};
pub use plugin::{PluginDigest, PluginRef, PluginSource, RulePlugins};
pub use rule::{ActionOutcome, GroupBy, Rule, RuleSpec, WebhookTarget};
pub use run::{RunRecord, RunType, RunWrite};
pub use seq::ChangeSeq;
pub use session::Session;
pub use time::Timestamp;
