//! Automation rules: what to watch, how to select, what to do.
//!
//! A rule watches one project. Each cycle it takes the runs whose change
//! sequence moved since its last cycle, keeps those that pass its filters,
//! its match plugin and its sampling, and acts on each at most once: a
//! webhook (the payload optionally rewritten by a transform plugin) and an
//! evaluator plugin that writes feedback; before them, an annotation queue
//! and a dataset. A thread rule (`group_by`) acts on a thread's runs
//! together once the thread is idle. The LangSmith fields keep their
//! LangSmith names; runhook's own fields are documented below.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::ids::{DatasetId, QueueId, RuleId, SessionId, WebhookId};
use super::plugin::RulePlugins;
use super::time::Timestamp;

/// A webhook target: a URL (it may carry a secret query parameter) and
/// custom headers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookTarget {
    /// Which of its rule's webhooks this is: given to every webhook when
    /// its rule is saved, and kept across changes (see the rules API).
    /// Absent in a client's definition until assigned, and in rules stored
    /// before webhooks had ids.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<WebhookId>,
    /// Where to POST.
    pub url: String,
    /// Extra request headers.
    #[serde(default)]
    pub headers: Option<BTreeMap<String, String>>,
    /// The message format the body is rendered in for this webhook (a
    /// transform plugin: `"slack"`, or a reference), after the rule's own
    /// transform plugin; `None`: the body as is.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "super::plugin::format_ref")]
    pub format: Option<super::plugin::PluginRef>,
}

/// PagerDuty's Events API v2 endpoint: where a rule's `alerts` go unless
/// the server is configured otherwise.
pub const PAGERDUTY_EVENTS_URL: &str = "https://events.pagerduty.com/v2/enqueue";

/// LangSmith's rule-level alert action (`alerts: [{"type": "pagerduty",
/// "routing_key", "summary", "severity"}]`): each payload the rule sends
/// also goes to PagerDuty as an event, in the shipped `pagerduty` format.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleAlert {
    /// The service; LangSmith has only PagerDuty.
    #[serde(rename = "type")]
    pub kind: RuleAlertKind,
    /// The PagerDuty integration key (sealed at rest).
    pub routing_key: String,
    /// The event's summary (default: what the payload holds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// The event's severity (default: `error` when a run errored, else
    /// `info`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<AlertSeverity>,
}

/// The services a rule-level alert goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleAlertKind {
    /// PagerDuty Events API v2.
    Pagerduty,
}

/// PagerDuty's severities.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertSeverity {
    /// Critical.
    Critical,
    /// Warning.
    Warning,
    /// Error.
    Error,
    /// Info.
    Info,
}

impl RuleAlert {
    /// The webhook target this alert is, as the rule at position `index`
    /// of its `alerts` sends to `url`: the `pagerduty` format with the
    /// alert's key, summary and severity, and an id of its own derived from
    /// the rule and the position, so its deliveries can be told apart and
    /// redelivered like a webhook's.
    pub fn target(&self, rule: super::ids::RuleId, index: usize, url: &str) -> WebhookTarget {
        let mut config = serde_json::json!({"routing_key": self.routing_key});
        if let Some(summary) = &self.summary {
            config["summary"] = summary.as_str().into();
        }
        if let Some(severity) = self.severity {
            config["severity"] = serde_json::to_value(severity).unwrap_or_default();
        }
        let format = super::plugin::PluginRef {
            config,
            ..super::plugin::PluginRef::new(super::plugin::PluginSource::Builtin("pagerduty".into()))
        };
        let id = uuid::Uuid::new_v5(&rule.0, format!("alerts[{index}]").as_bytes());
        WebhookTarget { id: Some(WebhookId(id)), format: Some(format), ..WebhookTarget::new(url) }
    }
}

impl WebhookTarget {
    /// A target POSTing to `url`, with no header, no format and no id yet.
    pub fn new(url: impl Into<String>) -> Self {
        Self { id: None, url: url.into(), headers: None, format: None }
    }
}

/// A rule's definition, as created and patched through the API or config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleSpec {
    /// A human name.
    pub display_name: String,
    /// The project watched.
    pub session_id: SessionId,
    /// Filter on the run.
    pub filter: Option<String>,
    /// Filter on the run's root.
    pub trace_filter: Option<String>,
    /// Filter on any run of the run's trace.
    pub tree_filter: Option<String>,
    /// Fraction of matching runs acted on, 0 to 1 (deterministic per run).
    pub sampling_rate: f64,
    /// Whether the rule runs.
    pub is_enabled: bool,
    /// Process runs started since this time once, at creation.
    pub backfill_from: Option<Timestamp>,
    /// Webhook targets.
    pub webhooks: Vec<WebhookTarget>,
    /// LangSmith's PagerDuty alert action.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alerts: Vec<RuleAlert>,
    /// runhook: plugins by capability.
    pub plugins: RulePlugins,
    /// runhook: the longest a run waits for the rule's cycle, in seconds
    /// (at least 1). With `wake_on_ingest` a run usually waits about
    /// `batch_ms`; without, this is the polling interval.
    pub interval_seconds: u64,
    /// runhook: whether a commit that changes the project's runs wakes the
    /// rule (default). False: the rule polls every `interval_seconds`, as
    /// LangSmith's rules do.
    #[serde(default = "defaults::wake_on_ingest")]
    pub wake_on_ingest: bool,
    /// runhook: after a wake-up, how long the rule waits for more runs
    /// before its cycle, in milliseconds: runs ingested within it go in one
    /// window (and one payload). The latency/batching trade-off.
    #[serde(default = "defaults::batch_ms")]
    pub batch_ms: u64,
    /// runhook: most runs in one webhook POST; more are split over several.
    pub max_runs_per_payload: usize,
    /// runhook: a `whsec_...` secret to sign webhooks (Standard Webhooks).
    pub signing_secret: Option<String>,
    /// Add each run acted on to this annotation queue (LangSmith's first action).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub add_to_annotation_queue_id: Option<QueueId>,
    /// Add each run acted on to this dataset as an example (LangSmith's
    /// action, before the webhook).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub add_to_dataset_id: Option<DatasetId>,
    /// With `add_to_dataset_id`: a feedback's `correction`, when the run
    /// has one, is the example's outputs instead of the run's.
    #[serde(default)]
    pub add_to_dataset_prefer_correction: bool,
    /// Thread rules (`"thread_id"`): the rule acts on threads, once each
    /// has been idle for `thread_idle_seconds`, not on runs one by one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_by: Option<GroupBy>,
    /// runhook: with `group_by`, how long a thread has had no run (by the
    /// runs' own times) before the rule acts on it, in seconds.
    #[serde(default = "defaults::thread_idle_seconds")]
    pub thread_idle_seconds: u64,
    /// runhook: the secret `signing_secret` replaced, still signing beside
    /// it for a while (set by [`RuleSpec::rotate_from`], never by a client).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retired_signing_secret: Option<RetiredSecret>,
}

/// What a rule groups runs by before it acts (LangSmith's `group_by`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum GroupBy {
    /// Runs sharing a thread id (`thread_id`, `session_id` or
    /// `conversation_id` in their metadata) form a thread. The API's v2
    /// spelling `THREAD_ID` is read too.
    #[serde(rename = "thread_id", alias = "THREAD_ID")]
    ThreadId,
}

/// A signing secret replaced by a new one. Until `until`, webhooks carry a
/// signature by each, so receivers switch to the new secret without
/// rejecting a webhook (Standard Webhooks receivers accept a header with
/// several signatures when one verifies).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetiredSecret {
    /// The replaced `whsec_...` secret.
    pub secret: String,
    /// When it stops signing.
    pub until: Timestamp,
}

impl RuleSpec {
    /// A rule on `session_id` sending every run to `webhooks`, with the
    /// API's defaults for the rest (enabled, no filter, every run, no
    /// plugin, unsigned).
    pub fn new(display_name: impl Into<String>, session_id: SessionId, webhooks: Vec<WebhookTarget>) -> Self {
        Self {
            display_name: display_name.into(),
            session_id,
            filter: None,
            trace_filter: None,
            tree_filter: None,
            sampling_rate: 1.0,
            is_enabled: true,
            backfill_from: None,
            webhooks,
            alerts: Vec::new(),
            plugins: RulePlugins::default(),
            interval_seconds: defaults::INTERVAL_SECONDS,
            wake_on_ingest: true,
            batch_ms: defaults::BATCH_MS,
            max_runs_per_payload: defaults::MAX_RUNS_PER_PAYLOAD,
            signing_secret: None,
            add_to_annotation_queue_id: None,
            add_to_dataset_id: None,
            add_to_dataset_prefer_correction: false,
            group_by: None,
            thread_idle_seconds: defaults::THREAD_IDLE_SECONDS,
            retired_signing_secret: None,
        }
    }

    /// Where the rule sends its payloads: its webhooks, then its alerts as
    /// targets for PagerDuty at `pagerduty_url`.
    pub fn targets(&self, rule: super::ids::RuleId, pagerduty_url: &str) -> Vec<WebhookTarget> {
        let alerts = self.alerts.iter().enumerate().map(|(i, a)| a.target(rule, i, pagerduty_url));
        self.webhooks.iter().cloned().chain(alerts).collect()
    }

    /// The name of target `i` of [`targets`](Self::targets) in messages:
    /// `webhooks[i]` or `alerts[j]`.
    pub fn target_name(&self, i: usize) -> String {
        match i.checked_sub(self.webhooks.len()) {
            None => format!("webhooks[{i}]"),
            Some(j) => format!("alerts[{j}]"),
        }
    }

    /// The secrets a webhook queued at `now` is signed with: the current
    /// one, then the retired one while it still signs. Empty: unsigned.
    pub fn signing_secrets(&self, now: Timestamp) -> Vec<String> {
        let retired = self.retired_signing_secret.as_ref().filter(|r| r.until > now).map(|r| r.secret.clone());
        self.signing_secret.iter().cloned().chain(retired).collect()
    }

    /// Gives every webhook an id, keeping those it had in `old` (the rule
    /// as stored before this change, if any): an id the client sent back
    /// is kept; otherwise a webhook with a URL `old` had takes that one's
    /// id; otherwise, when the list is as long as `old`'s, the webhook at
    /// the same position takes the id there (one URL edited in place);
    /// otherwise a new id. So a redelivery follows a webhook whose URL
    /// changed. Errs naming the first id given twice.
    pub fn assign_webhook_ids(&mut self, old: Option<&RuleSpec>) -> Result<(), String> {
        let old: &[WebhookTarget] = old.map_or(&[], |o| o.webhooks.as_slice());
        let mut taken: Vec<WebhookId> = Vec::new();
        for (i, w) in self.webhooks.iter().enumerate() {
            if let Some(id) = w.id {
                if taken.contains(&id) {
                    return Err(format!("webhooks[{i}].id: {id} is given twice"));
                }
                taken.push(id);
            }
        }
        let same_length = old.len() == self.webhooks.len();
        let free = |id: Option<WebhookId>, taken: &[WebhookId]| id.filter(|id| !taken.contains(id));
        for i in 0..self.webhooks.len() {
            if self.webhooks[i].id.is_some() {
                continue;
            }
            let url = &self.webhooks[i].url;
            let id = old
                .iter()
                .find(|o| &o.url == url && free(o.id, &taken).is_some())
                .and_then(|o| o.id)
                .or_else(|| if same_length { free(old[i].id, &taken) } else { None })
                .unwrap_or_else(WebhookId::new_v4);
            taken.push(id);
            self.webhooks[i].id = Some(id);
        }
        Ok(())
    }

    /// Carries over the signing history of `old`, the definition this one
    /// replaces: when the signing secret changed, the old one keeps signing
    /// beside the new one until `now + overlap`; a retired secret still in
    /// its overlap stays when the secret did not change; removing the
    /// secret stops signing at once.
    pub fn rotate_from(&mut self, old: &RuleSpec, now: Timestamp, overlap: chrono::Duration) {
        let live = |r: &&RetiredSecret| r.until > now;
        self.retired_signing_secret = match (&old.signing_secret, &self.signing_secret) {
            (Some(was), Some(is)) if was != is && overlap > chrono::Duration::zero() => Some(RetiredSecret {
                secret: was.clone(),
                until: Timestamp::from_datetime(now.as_datetime() + overlap),
            }),
            (Some(was), Some(is)) if was == is => old.retired_signing_secret.as_ref().filter(live).cloned(),
            _ => None,
        };
    }
}

/// A stored rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// Its id.
    pub id: RuleId,
    /// Its definition.
    pub spec: RuleSpec,
    /// When created.
    pub created_at: Timestamp,
    /// When last changed.
    pub updated_at: Timestamp,
    /// The change sequence when created: live processing starts after it.
    pub created_seq: super::ChangeSeq,
}

impl Rule {
    /// Whether the rule considers `run` when it is in its window: runs
    /// changed before the rule existed only when it backfills and they
    /// started since `backfill_from`.
    pub fn sees(&self, run: &super::RunRecord) -> bool {
        run.seq > self.created_seq || self.spec.backfill_from.is_some_and(|from| run.start_time >= from)
    }
}

/// Defaults of runhook's own rule fields.
pub mod defaults {
    /// The longest a run waits for a cycle, in seconds (LangSmith's poll).
    pub const INTERVAL_SECONDS: u64 = 60;
    /// Milliseconds a woken rule collects runs before its cycle: short
    /// enough that an alert lands well within a second, long enough that
    /// a burst of runs (a trace's runs, an SDK batch) goes in one payload.
    pub const BATCH_MS: u64 = 100;
    /// The most `batch_ms` may be.
    pub const MAX_BATCH_MS: u64 = 60_000;

    /// Serde's default for `wake_on_ingest` (rules stored before it existed).
    pub fn wake_on_ingest() -> bool {
        true
    }

    /// Serde's default for `batch_ms`.
    pub fn batch_ms() -> u64 {
        BATCH_MS
    }
    /// Runs per webhook POST.
    pub const MAX_RUNS_PER_PAYLOAD: usize = 100;
    /// Hours a replaced signing secret keeps signing beside the new one
    /// (Svix's grace period).
    pub const SIGNING_SECRET_OVERLAP_HOURS: i64 = 24;
    /// How long a thread is idle before a thread rule acts on it
    /// (LangSmith's default: 10 minutes).
    pub const THREAD_IDLE_SECONDS: u64 = 600;
    /// The shortest idle time a thread rule may have.
    pub const MIN_THREAD_IDLE_SECONDS: u64 = 60;
    /// The longest (runs older than LangSmith's 7 days are not threads'
    /// news any more; a day keeps pending threads few).
    pub const MAX_THREAD_IDLE_SECONDS: u64 = 86_400;
    /// The most threads one cycle acts on (LangSmith's limit per execution).
    pub const MAX_THREADS_PER_CYCLE: usize = 500;

    /// Serde's default for `thread_idle_seconds`.
    pub fn thread_idle_seconds() -> u64 {
        THREAD_IDLE_SECONDS
    }
}

/// The outcome of one action on one run, as rule logs show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionOutcome {
    /// `success`, `skipped`, `error` (or `pending` while a webhook is queued).
    pub outcome: String,
    /// Details: the error message, the delivery id, the feedback written.
    pub payload: Option<Value>,
}

impl ActionOutcome {
    /// A successful action with details.
    pub fn success(payload: Value) -> Self {
        Self { outcome: "success".into(), payload: Some(payload) }
    }

    /// A failed action with its message.
    pub fn error(message: impl Into<String>) -> Self {
        Self { outcome: "error".into(), payload: Some(serde_json::json!({"error": message.into()})) }
    }

    /// A queued webhook.
    pub fn pending(payload: Value) -> Self {
        Self { outcome: "pending".into(), payload: Some(payload) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signed(secret: Option<&str>) -> RuleSpec {
        RuleSpec { signing_secret: secret.map(str::to_string), ..RuleSpec::new("r", SessionId::new_v4(), vec![]) }
    }

    fn at(hours: i64) -> Timestamp {
        let start = chrono::DateTime::parse_from_rfc3339("2026-11-30T00:00:00Z").map(|t| t.to_utc());
        Timestamp::from_datetime(start.expect("a valid time") + chrono::Duration::hours(hours))
    }

    #[test]
    fn a_replaced_signing_secret_signs_beside_the_new_one_for_the_overlap() {
        let day = chrono::Duration::hours(24);
        let a = signed(Some("whsec_a"));
        let mut b = signed(Some("whsec_b"));
        b.rotate_from(&a, at(0), day);
        assert_eq!(b.signing_secrets(at(1)), ["whsec_b", "whsec_a"]);
        assert_eq!(b.signing_secrets(at(24)), ["whsec_b"], "the overlap ended");

        // An unrelated change keeps the overlap running; another rotation
        // retires the secret it replaces, and the older one goes.
        let mut b_again = signed(Some("whsec_b"));
        b_again.rotate_from(&b, at(2), day);
        assert_eq!(b_again.retired_signing_secret, b.retired_signing_secret);
        let mut c = signed(Some("whsec_c"));
        c.rotate_from(&b, at(3), day);
        assert_eq!(c.signing_secrets(at(4)), ["whsec_c", "whsec_b"]);

        // Removing the secret stops signing at once; so does a rule that
        // never signed, or no overlap.
        let mut none = signed(None);
        none.rotate_from(&c, at(5), day);
        assert!(none.signing_secrets(at(5)).is_empty());
        let mut first = signed(Some("whsec_a"));
        first.rotate_from(&signed(None), at(0), day);
        assert_eq!(first.signing_secrets(at(0)), ["whsec_a"]);
        let mut quick = signed(Some("whsec_b"));
        quick.rotate_from(&a, at(0), chrono::Duration::zero());
        assert_eq!(quick.signing_secrets(at(0)), ["whsec_b"]);
    }
}

#[cfg(test)]
mod webhook_id_tests {
    use super::*;

    fn hook(url: &str) -> WebhookTarget {
        WebhookTarget::new(url)
    }

    /// Ids are kept through a change: sent back, by URL, or in place.
    #[test]
    fn webhook_ids_follow_their_webhooks() {
        let mut old = RuleSpec::new("r", SessionId::new_v4(), vec![hook("https://a/"), hook("https://b/")]);
        old.assign_webhook_ids(None).unwrap();
        let ids: Vec<_> = old.webhooks.iter().map(|w| w.id.unwrap()).collect();
        assert_ne!(ids[0], ids[1]);

        // Reordered by URL: each keeps its id.
        let mut swapped = RuleSpec { webhooks: vec![hook("https://b/"), hook("https://a/")], ..old.clone() };
        swapped.assign_webhook_ids(Some(&old)).unwrap();
        assert_eq!(swapped.webhooks.iter().map(|w| w.id.unwrap()).collect::<Vec<_>>(), [ids[1], ids[0]]);

        // One URL edited in place keeps its position's id.
        let mut edited = RuleSpec { webhooks: vec![hook("https://a2/"), hook("https://b/")], ..old.clone() };
        edited.assign_webhook_ids(Some(&old)).unwrap();
        assert_eq!(edited.webhooks.iter().map(|w| w.id.unwrap()).collect::<Vec<_>>(), ids);

        // A webhook added gets a new id; an id sent back is kept.
        let mut grown = RuleSpec {
            webhooks: vec![
                WebhookTarget { id: Some(ids[1]), ..hook("https://c/") },
                hook("https://a/"),
                hook("https://d/"),
            ],
            ..old.clone()
        };
        grown.assign_webhook_ids(Some(&old)).unwrap();
        let got: Vec<_> = grown.webhooks.iter().map(|w| w.id.unwrap()).collect();
        assert_eq!(&got[..2], &[ids[1], ids[0]]);
        assert!(!ids.contains(&got[2]));

        let mut twice = RuleSpec { webhooks: vec![WebhookTarget { id: Some(ids[0]), ..hook("https://x/") }; 2], ..old };
        assert!(twice.assign_webhook_ids(None).unwrap_err().contains("webhooks[1].id"));
    }
}
