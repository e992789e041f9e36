//! The HTTP API: LangSmith-compatible ingest and reads, rules, deliveries,
//! plugins, health, and the dashboard (`ui`, signed in through `signin`).
//!
//! Every route is served both at `/` and under `/api/v1`, because the
//! LangSmith SDK calls hand-written paths relative to its endpoint and
//! generated ones under `/api/v1`. Layer order (outermost first): trace,
//! JSON errors (every 4xx and 5xx body is `{"detail": ...}`), header
//! limits, catch-panic, then per route: API-key check, handler. Handlers read bodies
//! themselves through `body`, which enforces the size limits and
//! decompression, so every bad input gets a 4xx that names the problem.
//!
//! Layering: layer 4; imports `model`, `config`, `store`, `select`, `payload`,
//! `plugins`, `delivery` (the header and target checks webhooks pass when saved),
//! and of `rules` only definitions and trials (the scheduler and the API meet in
//! the store and through `RuleSignals`).

pub mod alerts;
mod auth;
mod body;
mod datasets;
mod deliveries;
pub mod error;
mod feedback;
pub mod health;
mod info;
mod ingest;
pub mod listen;
mod plugins;
mod queues;
pub mod rules;
mod runs;
mod sessions;
pub mod signin;
mod trial;
mod ui;

use std::sync::Arc;

use axum::Router;
use axum::http::Uri;
use axum::middleware;
use axum::routing::{get, post};

pub use auth::ApiKey;
use error::ApiError;

use crate::config::Limits;
use crate::delivery::NetworkGuard;
use runhook_core::model::signals::RuleSignals;
use runhook_plugins::PluginRegistry;
use runhook_store::Store;

/// What every handler can reach.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The store.
    pub store: Arc<dyn Store>,
    /// Body size limits.
    pub limits: Limits,
    /// The key clients must present, and the attachment-URL signer derived from it.
    pub key: Arc<ApiKey>,
    /// The plugins rules use (rules are validated by loading theirs).
    pub plugins: Arc<PluginRegistry>,
    /// The largest plugin upload (`plugins.max_file_bytes`).
    pub max_plugin_bytes: u64,
    /// How rule changes and triggers reach the scheduler.
    pub signals: Arc<RuleSignals>,
    /// The networks webhooks may reach; rules are refused targets outside them.
    pub targets: Arc<NetworkGuard>,
    /// Renders the process's metrics for `/metrics`.
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    /// Dashboard sessions (cookies signed with a secret derived from the key).
    pub sessions: Arc<signin::Sessions>,
    /// Large inputs and outputs by link in payloads (`None`: always inline).
    pub large: Option<Arc<crate::payload::LargeFields>>,
    /// The metrics' samples of the last hour (the dashboard's health charts).
    pub health: Arc<health::HealthHistory>,
}

/// Tells every replica's scheduler (this one's too) about `what`. When the
/// store cannot, this process's scheduler still hears it, and the other
/// replicas find rule edits at their next lease tick.
pub async fn announce(state: &AppState, what: runhook_store::Announcement) {
    if let Err(e) = state.store.announce(what).await {
        tracing::warn!(error = %e, "cannot announce to the other replicas");
        what.ring(&state.signals);
    }
}

/// The full router, with state applied.
pub fn router(state: AppState) -> Router {
    let protected = Router::new()
        .route("/runs/multipart", post(ingest::multipart))
        .route("/runs/batch", post(ingest::batch))
        .route("/runs", post(ingest::create_run))
        .route("/runs/query", post(runs::query))
        .route("/runs/{id}", get(runs::read).patch(ingest::patch_run))
        .route("/feedback", post(feedback::create).get(feedback::list))
        .route("/feedback/{id}", get(feedback::read))
        .route("/sessions", get(sessions::list).post(sessions::create))
        .route("/sessions/{id}", get(sessions::read))
        .route("/runs/rules", get(rules::list).post(rules::create))
        .route("/runs/rules/validate", post(trial::validate))
        .route("/alerts", get(alerts::list).post(alerts::create))
        .route("/alerts/backtest", post(alerts::backtest))
        .route("/alerts/{id}", get(alerts::read).patch(alerts::patch).delete(alerts::delete))
        .route("/runs/rules/{id}", get(rules::read).patch(rules::patch).delete(rules::delete))
        .route("/runs/rules/trigger", post(rules::trigger_many))
        .route("/runs/rules/{id}/logs", get(rules::logs))
        .route("/runs/rules/{id}/logs/v2", get(rules::logs_v2))
        .route("/runs/rules/{id}/cycles", get(rules::cycles))
        .route("/runs/{id}/rules", get(rules::acted_on))
        .route("/runs/rules/{id}/last_applied", get(rules::last_applied))
        .route("/runs/rules/{id}/trigger", post(rules::trigger))
        .route("/datasets", get(datasets::list_datasets).post(datasets::create_dataset))
        .route("/datasets/{id}", get(datasets::read_dataset).delete(datasets::delete_dataset))
        .route("/examples", get(datasets::list_examples).post(datasets::create_example))
        .route("/examples/bulk", post(datasets::create_examples))
        .route(
            "/examples/{id}",
            get(datasets::read_example).patch(datasets::update_example).delete(datasets::delete_example),
        )
        .route("/annotation-queues", get(queues::list).post(queues::create))
        .route("/annotation-queues/{id}", get(queues::read).delete(queues::delete))
        .route("/annotation-queues/{id}/runs", get(queues::list_runs).post(queues::add_runs))
        .route("/annotation-queues/{id}/runs/by-key", post(queues::add_runs_by_key))
        .route("/annotation-queues/{id}/runs/{run}", axum::routing::patch(queues::review).delete(queues::remove_run))
        .route("/annotation-queues/{id}/run/{index}", get(queues::run_at))
        .route("/plugins", get(plugins::list).post(plugins::upload))
        .route("/plugins/{digest}", get(plugins::read).delete(plugins::delete))
        .route("/health/series", get(health::series))
        .route("/deliveries", get(deliveries::list))
        .route("/deliveries/{id}", get(deliveries::read))
        .route("/deliveries/redeliver", post(deliveries::redeliver_matching))
        .route("/deliveries/{id}/redeliver", post(deliveries::redeliver))
        .route_layer(middleware::from_fn_with_state(state.clone(), auth::require_api_key));
    // Open routes: what the SDK probes before it has a key, health for
    // orchestrators, and attachment and large-field downloads (authorised
    // by their signed link).
    let open = Router::new()
        .route("/info", get(info::info))
        .route("/healthz", get(info::healthz))
        .route("/readyz", get(info::readyz))
        .route("/metrics", get(info::metrics))
        .route("/attachments/{run}/{name}", get(runs::attachment))
        .route("/runs/{id}/io/{field}", get(runs::io));
    let api = open.merge(protected);
    // The dashboard: its page and files, and its sign-in.
    let dashboard = Router::new()
        .route("/", get(ui::page))
        .route("/ui", get(ui::page))
        .route("/ui/", get(ui::page))
        .route("/ui/{*route}", get(ui::page))
        .route("/ui/assets/{name}", get(ui::asset))
        .route("/ui/session", get(signin::current).post(signin::sign_in).delete(signin::sign_out));
    Router::new()
        .nest("/api/v1", api.clone())
        .merge(api)
        .merge(dashboard)
        .fallback(not_found)
        .layer(tower_http::catch_panic::CatchPanicLayer::new())
        .layer(middleware::from_fn(error::header_limits))
        .layer(middleware::from_fn(error::json_errors))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::NotFound(format!("no route for {}", uri.path()))
}

/// A webhook as the API shows it: the URL masked (see [`mask_url`]),
/// header names without their values, the format with its config's
/// `routing_key` (a PagerDuty integration key) masked.
fn webhook_view(w: &runhook_core::model::WebhookTarget) -> serde_json::Value {
    let headers: std::collections::BTreeMap<&String, &str> =
        w.headers.iter().flatten().map(|(k, _)| (k, "***")).collect();
    let mut view = serde_json::json!({"id": w.id, "url": mask_url(&w.url), "headers": headers});
    if let Some(format) = &w.format {
        let mut format = format.clone();
        if let Some(key) = format.config.get_mut("routing_key").filter(|k| k.is_string()) {
            *key = "***".into();
        }
        view["format"] = runhook_core::model::plugin::format_ref::written(&format);
    }
    view
}

/// A webhook URL as the API shows it: every query value and any password
/// masked (`?secret=***`). Header values are never shown at all.
fn mask_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) => {
            let pairs: Vec<(String, String)> =
                u.query_pairs().map(|(k, _)| (k.into_owned(), "***".to_string())).collect();
            if pairs.is_empty() {
                u.set_query(None);
            } else {
                u.query_pairs_mut().clear().extend_pairs(pairs);
            }
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            u.to_string().replace("%2A%2A%2A", "***")
        }
        Err(_) => "***".into(),
    }
}

fn path_id<T: std::str::FromStr>(what: &str, raw: &str) -> Result<T, ApiError> {
    raw.parse().map_err(|_| ApiError::BadRequest(format!("{what} {raw:?} is not a UUID")))
}

/// Query-string pairs, keeping repeated keys (`?run=a&run=b`).
/// At most `limits.max_list_items` of them.
fn query_pairs(raw: Option<&str>, limits: &Limits) -> Result<Vec<(String, String)>, ApiError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw.unwrap_or_default())
        .map_err(|e| ApiError::BadRequest(format!("malformed query string: {e}")))?;
    body::check_list("the query string", pairs.len(), limits.max_list_items, "limits.max_list_items")?;
    Ok(pairs)
}

/// Largest `offset` a list accepts: beyond it a page would be a scan of
/// ten million rows to return nothing.
const MAX_OFFSET: usize = 10_000_000;

/// The `offset` query parameter, 0 when absent, at most [`MAX_OFFSET`].
fn query_offset(pairs: &[(String, String)]) -> Result<usize, ApiError> {
    query_usize(pairs, "offset", 0, MAX_OFFSET)
}

/// A non-negative integer query parameter with a default and a maximum.
fn query_usize(pairs: &[(String, String)], key: &str, default: usize, max: usize) -> Result<usize, ApiError> {
    match pairs.iter().rev().find(|(k, _)| k == key) {
        None => Ok(default),
        Some((_, v)) => match v.parse::<usize>() {
            Ok(n) if n <= max => Ok(n),
            Ok(n) => Err(ApiError::BadRequest(format!("query parameter {key}={n} exceeds the maximum of {max}"))),
            Err(_) => Err(ApiError::BadRequest(format!("query parameter {key}={v:?} is not a non-negative integer"))),
        },
    }
}
