//! Rule definitions: what a client (the API, the config file, a future
//! dashboard) says a rule is, checked in full before it is stored.
//!
//! [`Definitions::validate`] turns a rule body (LangSmith's schema plus
//! runhook's fields) into a [`RuleSpec`]: the project (found, or created by
//! name), the three filters, the webhook URLs (public, or allowed by the
//! operator) and headers, the plugins (loaded, so a missing capability or a
//! broken component is refused now, not at the first cycle) and runhook's
//! own fields. An [`DefinitionError::Invalid`] names the field and the
//! problem. [`Definitions::apply_config_rules`] applies the config file's
//! `[[rules]]` through the same checks.

use std::sync::Arc;

use crate::config::ConfigRule;
use crate::delivery::{self, NetworkGuard};
use crate::select::Selection;
use runhook_core::model::rule::defaults;
use runhook_core::model::{GroupBy, PluginRef, PluginSource, RuleDefinition, RuleSpec, Session, SessionId, Timestamp};
use runhook_plugins::{Capability, PluginRegistry};
use runhook_store::{SessionQuery, Store, StoreError};

/// Why a rule definition was refused.
#[derive(Debug, thiserror::Error)]
pub enum DefinitionError {
    /// The definition is wrong; the message names the field.
    #[error("{0}")]
    Invalid(String),
    /// The store failed while checking it.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn bad(msg: impl Into<String>) -> DefinitionError {
    DefinitionError::Invalid(msg.into())
}

/// Custom headers a webhook may carry, and the longest value (Svix's cap).
const MAX_HEADERS: usize = 32;
const MAX_HEADER_VALUE: usize = 4096;
/// Webhooks one rule may have: each matched run is one POST per webhook.
pub const MAX_WEBHOOKS: usize = 10;
/// Longest webhook URL, as browsers and most proxies accept.
pub const MAX_URL_BYTES: usize = 2048;

/// What checking a definition needs: the store (projects), the plugin
/// registry (plugins are loaded) and the network guard (webhook targets).
#[derive(Debug, Clone, Copy)]
pub struct Definitions<'a> {
    /// Projects are looked up and created here.
    pub store: &'a dyn Store,
    /// Plugins are prepared here.
    pub plugins: &'a Arc<PluginRegistry>,
    /// Webhook URLs are checked against it.
    pub targets: &'a NetworkGuard,
}

impl Definitions<'_> {
    /// Validates a full rule body into a spec (loading its plugins). With
    /// `replaces`, the rule as stored before this change: its webhooks'
    /// ids and its signing history carry over (see
    /// `RuleSpec::assign_webhook_ids` and `RuleSpec::rotate_from`).
    pub async fn validate(&self, b: RuleDefinition, replaces: Option<&RuleSpec>) -> Result<RuleSpec, DefinitionError> {
        let display_name = b.display_name.map(|n| n.trim().to_string()).filter(|n| !n.is_empty());
        let display_name = display_name.ok_or_else(|| bad("display_name is required"))?;
        if display_name.len() > 256 {
            return Err(bad("display_name is longer than 256 characters"));
        }
        let session_id = match (b.session_id, b.session_name.as_deref().map(str::trim).filter(|n| !n.is_empty())) {
            (Some(id), _) => {
                self.store.get_session(id).await?.ok_or_else(|| bad(format!("session_id {id}: no such project")))?;
                id
            }
            (None, Some(name)) => self.project_by_name(name).await?,
            (None, None) => return Err(bad("session_id or session_name (the project to watch) is required")),
        };
        let sampling_rate = b.sampling_rate.unwrap_or(1.0);
        if !(0.0..=1.0).contains(&sampling_rate) {
            return Err(bad(format!("sampling_rate must be between 0 and 1, got {sampling_rate}")));
        }
        Selection::parse(b.filter.as_deref(), b.trace_filter.as_deref(), b.tree_filter.as_deref())
            .map_err(|e| bad(e.to_string()))?;
        let webhooks = b.webhooks.unwrap_or_default();
        self.check_webhooks(&webhooks).await?;
        let alerts = b.alerts.unwrap_or_default();
        check_rule_alerts(&alerts)?;
        let plugins = b.plugins.unwrap_or_default();
        for (field, r, cap) in [
            ("plugins.match", &plugins.matcher, Capability::Match),
            ("plugins.transform", &plugins.transform, Capability::Transform),
            ("plugins.evaluate", &plugins.evaluate, Capability::Evaluate),
        ] {
            if let Some(r) = r {
                self.check_plugin(field, r, cap).await?;
            }
        }
        if let Some(id) = b.add_to_dataset_id
            && self.store.get_dataset(id).await?.is_none()
        {
            return Err(bad(format!("add_to_dataset_id {id}: no such dataset")));
        }
        if let Some(id) = b.add_to_annotation_queue_id
            && self.store.get_queue(id).await?.is_none()
        {
            return Err(bad(format!("add_to_annotation_queue_id {id}: no such annotation queue")));
        }
        if b.add_to_dataset_prefer_correction == Some(true) && b.add_to_dataset_id.is_none() {
            return Err(bad("add_to_dataset_prefer_correction needs add_to_dataset_id"));
        }
        if webhooks.is_empty()
            && alerts.is_empty()
            && plugins.evaluate.is_none()
            && b.add_to_dataset_id.is_none()
            && b.add_to_annotation_queue_id.is_none()
        {
            return Err(bad(
                "a rule needs an action: webhooks, alerts, an evaluator plugin (plugins.evaluate), a dataset \
                 (add_to_dataset_id) or an annotation queue (add_to_annotation_queue_id)",
            ));
        }
        let thread_idle_seconds = b.thread_idle_seconds.unwrap_or(defaults::THREAD_IDLE_SECONDS);
        match b.group_by {
            Some(GroupBy::ThreadId) => {
                // LangSmith's thread rules: only these two actions apply.
                if b.add_to_dataset_id.is_some() || plugins.evaluate.is_some() || !alerts.is_empty() {
                    return Err(bad("group_by thread_id: a thread rule acts through webhooks and an annotation \
                         queue only (remove add_to_dataset_id, alerts and plugins.evaluate)"));
                }
                let (min, max) = (defaults::MIN_THREAD_IDLE_SECONDS, defaults::MAX_THREAD_IDLE_SECONDS);
                if !(min..=max).contains(&thread_idle_seconds) {
                    return Err(bad(format!(
                        "thread_idle_seconds must be between {min} and {max}, got {thread_idle_seconds}"
                    )));
                }
            }
            None if b.thread_idle_seconds.is_some() => {
                return Err(bad("thread_idle_seconds applies to thread rules only (group_by: \"thread_id\")"));
            }
            None => {}
        }
        let interval_seconds = b.interval_seconds.unwrap_or(defaults::INTERVAL_SECONDS);
        if !(1..=86_400).contains(&interval_seconds) {
            return Err(bad(format!("interval_seconds must be between 1 and 86400, got {interval_seconds}")));
        }
        let batch_ms = b.batch_ms.unwrap_or(defaults::BATCH_MS);
        if batch_ms > defaults::MAX_BATCH_MS.min(interval_seconds * 1000) {
            return Err(bad(format!(
                "batch_ms must be between 0 and {} (and at most interval_seconds in milliseconds), got {batch_ms}",
                defaults::MAX_BATCH_MS
            )));
        }
        let max_runs_per_payload = b.max_runs_per_payload.unwrap_or(defaults::MAX_RUNS_PER_PAYLOAD);
        if !(1..=10_000).contains(&max_runs_per_payload) {
            return Err(bad(format!("max_runs_per_payload must be between 1 and 10000, got {max_runs_per_payload}")));
        }
        check_signing_secret(b.signing_secret.as_deref())?;
        let mut spec = RuleSpec {
            display_name,
            session_id,
            filter: b.filter.filter(|f| !f.trim().is_empty()),
            trace_filter: b.trace_filter.filter(|f| !f.trim().is_empty()),
            tree_filter: b.tree_filter.filter(|f| !f.trim().is_empty()),
            sampling_rate,
            is_enabled: b.is_enabled.unwrap_or(true),
            backfill_from: b.backfill_from,
            webhooks,
            alerts,
            plugins,
            interval_seconds,
            wake_on_ingest: b.wake_on_ingest.unwrap_or(true),
            batch_ms,
            max_runs_per_payload,
            signing_secret: b.signing_secret,
            add_to_annotation_queue_id: b.add_to_annotation_queue_id,
            add_to_dataset_id: b.add_to_dataset_id,
            add_to_dataset_prefer_correction: b.add_to_dataset_prefer_correction.unwrap_or(false),
            group_by: b.group_by,
            thread_idle_seconds,
            retired_signing_secret: None,
        };
        spec.assign_webhook_ids(replaces).map_err(bad)?;
        if let Some(old) = replaces {
            spec.rotate_from(old, Timestamp::now(), signing_overlap());
        }
        Ok(spec)
    }

    /// Checks webhook targets as a rule's or an alert's: at most
    /// [`MAX_WEBHOOKS`], each an http(s) URL with a host the network guard
    /// allows, headers a rule may set with visible values.
    pub async fn check_webhooks(&self, webhooks: &[runhook_core::model::WebhookTarget]) -> Result<(), DefinitionError> {
        if webhooks.len() > MAX_WEBHOOKS {
            return Err(bad(format!("webhooks: {} given; at most {MAX_WEBHOOKS} are allowed", webhooks.len())));
        }
        for (i, w) in webhooks.iter().enumerate() {
            if w.url.len() > MAX_URL_BYTES {
                return Err(bad(format!("webhooks[{i}].url: longer than {MAX_URL_BYTES} bytes")));
            }
            let url = reqwest::Url::parse(&w.url).map_err(|e| bad(format!("webhooks[{i}].url: {e}")))?;
            if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
                return Err(bad(format!("webhooks[{i}].url: must be an http or https URL with a host")));
            }
            if url.port() == Some(0) {
                return Err(bad(format!("webhooks[{i}].url: port 0 is not a port one can send to")));
            }
            // The query may hold a secret: the message names the host only.
            self.targets.check_target(&w.url).await.map_err(|e| bad(format!("webhooks[{i}].url: {e}")))?;
            let headers = w.headers.as_ref();
            if headers.is_some_and(|h| h.len() > MAX_HEADERS) {
                return Err(bad(format!("webhooks[{i}].headers: at most {MAX_HEADERS} custom headers")));
            }
            for (name, value) in headers.into_iter().flatten() {
                if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
                    return Err(bad(format!("webhooks[{i}].headers: {name:?} is not a valid header name")));
                }
                if let Some(why) = delivery::reserved_header(name) {
                    return Err(bad(format!("webhooks[{i}].headers.{name}: a rule cannot set this header: {why}")));
                }
                // What the message promises: printable ASCII, spaces and tabs.
                let visible = value.bytes().all(|b| b == b' ' || b == b'\t' || b.is_ascii_graphic());
                if value.len() > MAX_HEADER_VALUE || !visible {
                    return Err(bad(format!(
                        "webhooks[{i}].headers.{name}: not a valid header value (visible ASCII, at most \
                         {MAX_HEADER_VALUE} bytes)"
                    )));
                }
            }
            if let Some(format) = &w.format {
                self.check_format(&format!("webhooks[{i}].format"), format).await?;
            }
        }
        Ok(())
    }

    /// Checks a webhook's message format: a shipped one by a name that
    /// exists (PagerDuty's with its integration key), or any transform plugin.
    async fn check_format(&self, field: &str, r: &PluginRef) -> Result<(), DefinitionError> {
        if let PluginSource::Builtin(name) = &r.source {
            let key = r.config.get("routing_key").and_then(serde_json::Value::as_str).map(str::trim);
            if name == "pagerduty" && key.is_none_or(str::is_empty) {
                return Err(bad(format!("{field}.config.routing_key: the PagerDuty integration key is required")));
            }
        }
        self.check_plugin(field, r, Capability::Transform).await
    }

    /// The project named `name`, created when there is none.
    pub async fn project_by_name(&self, name: &str) -> Result<SessionId, DefinitionError> {
        let q = SessionQuery { name: Some(name.to_string()), limit: 1, ..SessionQuery::default() };
        if let Some(s) = self.store.list_sessions(&q).await?.first() {
            return Ok(s.id);
        }
        let s = Session {
            id: SessionId::new_v4(),
            name: name.to_string(),
            description: None,
            extra: None,
            start_time: Timestamp::now(),
        };
        match self.store.create_session(s).await {
            Ok(s) => Ok(s.id),
            // Created concurrently: read it back.
            Err(StoreError::Conflict(_)) => {
                let found = self.store.list_sessions(&q).await?;
                found.first().map(|s| s.id).ok_or_else(|| bad(format!("project {name:?} could not be created")))
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn check_plugin(&self, field: &str, r: &PluginRef, cap: Capability) -> Result<(), DefinitionError> {
        if r.deadline_ms.is_some_and(|d| !(1..=60_000).contains(&d)) {
            return Err(bad(format!("{field}.deadline_ms must be between 1 and 60000")));
        }
        if r.memory_mib.is_some_and(|m| !(1..=4096).contains(&m)) {
            return Err(bad(format!("{field}.memory_mib must be between 1 and 4096")));
        }
        if let PluginSource::Builtin(name) = &r.source {
            if runhook_formats::component(name).is_none() {
                return Err(bad(format!(
                    "{field}: no format named {name:?} is shipped with runhook (there are: {}); \
                     a plugin of your own is named by sha256 or path",
                    runhook_plugins::builtin_names()
                )));
            }
            if cap != Capability::Transform {
                return Err(bad(format!("{field}: the shipped formats are transform plugins, not {cap} plugins")));
            }
        }
        if let Some(digest) = r.digest() {
            // Probed when uploaded: its capabilities are on record.
            let Some(stored) = self.store.get_plugin(digest).await? else {
                return Err(bad(format!(
                    "{field}.sha256: no uploaded plugin has this digest; upload the component with POST /api/v1/plugins"
                )));
            };
            if !stored.capabilities.iter().any(|c| c == &cap.to_string()) {
                return Err(bad(format!(
                    "{field}: plugin {} (sha256:{}) does not export {cap} (it exports: {})",
                    stored.name,
                    digest.short(),
                    stored.capabilities.join(", ")
                )));
            }
        }
        let registry = self.plugins.clone();
        let spec = crate::plugins::spec(r, cap);
        // Checked without compiling; a first compilation runs in the background.
        let prepared = tokio::task::spawn_blocking(move || registry.prepare(&spec))
            .await
            .map_err(|e| bad(format!("{field}: the plugin check failed: {e}")))?;
        prepared.map_err(|e| bad(format!("{field}: {e}")))
    }

    /// Applies the `[[rules]]` of the config file: each is validated like an
    /// API create, then created, or updated when its definition changed.
    /// Errors name the rule by its position and display name.
    pub async fn apply_config_rules(&self, rules: &[ConfigRule]) -> Result<usize, String> {
        let mut applied = 0;
        for (i, rule) in rules.iter().enumerate() {
            let name = rule.definition.display_name.as_deref().unwrap_or("?");
            let at = |e: String| format!("rules[{i}] ({name}): {e}");
            let id = rule.id;
            let existing = self.store.get_rule(id).await.map_err(|e| at(e.to_string()))?;
            let replaces = existing.as_ref().map(|e| &e.spec);
            let spec = self.validate(rule.definition.clone(), replaces).await.map_err(|e| at(e.to_string()))?;
            match existing {
                Some(existing) if existing.spec == spec => {}
                Some(_) => drop(self.store.update_rule(id, &spec).await.map_err(|e| at(e.to_string()))?),
                None => drop(self.store.create_rule(id, &spec).await.map_err(|e| at(e.to_string()))?),
            }
            applied += 1;
        }
        Ok(applied)
    }
}

/// Checks a `whsec_...` signing secret (a rule's or an alert's).
pub fn check_signing_secret(secret: Option<&str>) -> Result<(), DefinitionError> {
    if let Some(secret) = secret {
        use base64::Engine;
        let key = secret.strip_prefix("whsec_").map(|k| base64::engine::general_purpose::STANDARD.decode(k));
        if !matches!(key, Some(Ok(ref k)) if k.len() >= 16) {
            return Err(bad("signing_secret must be whsec_ followed by at least 16 bytes in base64"));
        }
    }
    Ok(())
}

/// The most PagerDuty alerts a rule may have.
const MAX_RULE_ALERTS: usize = 10;

/// Checks LangSmith's rule-level alerts: a routing key each, a summary
/// PagerDuty accepts.
fn check_rule_alerts(alerts: &[runhook_core::model::rule::RuleAlert]) -> Result<(), DefinitionError> {
    if alerts.len() > MAX_RULE_ALERTS {
        return Err(bad(format!("alerts: {} given; at most {MAX_RULE_ALERTS} are allowed", alerts.len())));
    }
    for (i, a) in alerts.iter().enumerate() {
        let key = a.routing_key.trim();
        if key.is_empty() || key.len() > 256 || !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(bad(format!(
                "alerts[{i}].routing_key: the PagerDuty integration key is required \
                 (visible ASCII, at most 256 characters)"
            )));
        }
        if a.summary.as_ref().is_some_and(|s| s.chars().count() > 1024) {
            return Err(bad(format!("alerts[{i}].summary: PagerDuty takes at most 1024 characters")));
        }
    }
    Ok(())
}

/// How long a replaced signing secret keeps signing.
pub fn signing_overlap() -> chrono::Duration {
    chrono::Duration::hours(defaults::SIGNING_SECRET_OVERLAP_HOURS)
}
