//! Uploaded plugins: components stored in the database, so that every
//! replica loads the same bytes, named by their SHA-256.
//!
//! An upload of bytes already stored changes nothing and answers the stored
//! record. Rules use plugins by digest: saving a rule records which
//! digests it uses in the same transaction, and refuses one not stored
//! ([`StoreError::Conflict`]); deleting a plugin a rule still uses is
//! refused with the rules that use it. Both checks are made by the
//! database, so a rule saved while its plugin is deleted either keeps the
//! plugin or is refused, never left naming bytes that are gone.

use async_trait::async_trait;

use runhook_core::model::{PluginDigest, RuleId, Timestamp};

use crate::StoreError;

/// A component to store: its bytes and what the service learned of them.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginUpload {
    /// The SHA-256 of `bytes`.
    pub digest: PluginDigest,
    /// A name for people and logs (not unique).
    pub name: String,
    /// The capabilities it exports (`match`, `transform`, `evaluate`).
    pub capabilities: Vec<String>,
    /// The component.
    pub bytes: Vec<u8>,
}

impl PluginUpload {
    /// An upload of `bytes`, its digest computed here.
    pub fn new(name: impl Into<String>, capabilities: Vec<String>, bytes: Vec<u8>) -> Self {
        Self { digest: PluginDigest::of(&bytes), name: name.into(), capabilities, bytes }
    }
}

/// A stored plugin, without its bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredPlugin {
    /// The SHA-256 of its bytes.
    pub digest: PluginDigest,
    /// The name given when it was first uploaded.
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
    /// The capabilities it exports.
    pub capabilities: Vec<String>,
    /// When first uploaded.
    pub created_at: Timestamp,
    /// The rules that use it, by id.
    pub rules: Vec<RuleId>,
}

/// What deleting a plugin did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PluginRemoval {
    /// It was deleted.
    Removed,
    /// No plugin has that digest.
    NotFound,
    /// These rules use it; nothing was deleted.
    InUse(Vec<RuleId>),
}

/// The uploaded plugins.
#[async_trait]
pub trait PluginStore: Send + Sync + std::fmt::Debug {
    /// Stores `upload` unless its digest is stored; the stored record and
    /// whether it is new.
    async fn put_plugin(&self, upload: &PluginUpload) -> Result<(StoredPlugin, bool), StoreError>;
    /// The plugin with `digest`.
    async fn get_plugin(&self, digest: &PluginDigest) -> Result<Option<StoredPlugin>, StoreError>;
    /// The bytes of the plugin with `digest`.
    async fn plugin_bytes(&self, digest: &PluginDigest) -> Result<Option<Vec<u8>>, StoreError>;
    /// Every plugin, oldest first.
    async fn list_plugins(&self) -> Result<Vec<StoredPlugin>, StoreError>;
    /// Deletes the plugin with `digest` unless a rule uses it.
    async fn delete_plugin(&self, digest: &PluginDigest) -> Result<PluginRemoval, StoreError>;
}

/// Capabilities as stored: comma-separated.
pub fn capabilities_text(capabilities: &[String]) -> String {
    capabilities.join(",")
}

/// Capabilities from their stored text.
pub fn capabilities_from(text: &str) -> Vec<String> {
    text.split(',').filter(|s| !s.is_empty()).map(str::to_string).collect()
}

/// The conflict a rule save answers when it names a digest not stored.
pub fn missing_plugin(digest: impl std::fmt::Display) -> StoreError {
    StoreError::Conflict(format!("no uploaded plugin has sha256 {digest} (was it deleted meanwhile?)"))
}

/// The conflict an upload answers when its plugin was deleted between its
/// write and its read back.
pub fn deleted_meanwhile(digest: impl std::fmt::Display) -> StoreError {
    StoreError::Conflict(format!("plugin {digest} was deleted meanwhile; upload it again"))
}
