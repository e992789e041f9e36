//! The dashboard's files, embedded in the binary at build time.
//!
//! `/` and every `/ui/...` path answer the one page (the script routes
//! by path), `/ui/assets/{name}` its files: `app.js` (router, sign-in),
//! `api.js`, `lib.js` and a module per section, the style sheet and the icon.
//! The files are plain HTML, CSS and JavaScript under `host/server/ui/`:
//! no build step, nothing fetched from elsewhere, so `cargo build` alone
//! makes a binary with its dashboard and the dashboard works offline.
//!
//! Every answer carries a strict Content-Security-Policy: scripts, styles,
//! images and requests from this origin only, no inline script or style,
//! no framing, no plugins, forms posting nowhere else.

use axum::extract::Path;
use axum::http::{HeaderName, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// The policy every dashboard answer carries.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; font-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

const INDEX: &str = include_str!("../../ui/index.html");
const JS: &str = "text/javascript; charset=utf-8";
const ASSETS: &[(&str, &str, &str)] = &[
    ("app.js", JS, include_str!("../../ui/app.js")),
    ("api.js", JS, include_str!("../../ui/api.js")),
    ("lib.js", JS, include_str!("../../ui/lib.js")),
    ("rules.js", JS, include_str!("../../ui/rules.js")),
    ("rule-form.js", JS, include_str!("../../ui/rule-form.js")),
    ("trial.js", JS, include_str!("../../ui/trial.js")),
    ("deliveries.js", JS, include_str!("../../ui/deliveries.js")),
    ("formats.js", JS, include_str!("../../ui/formats.js")),
    ("runs.js", JS, include_str!("../../ui/runs.js")),
    ("plugins.js", JS, include_str!("../../ui/plugins.js")),
    ("health.js", JS, include_str!("../../ui/health.js")),
    ("queues.js", JS, include_str!("../../ui/queues.js")),
    ("datasets.js", JS, include_str!("../../ui/datasets.js")),
    ("alerts.js", JS, include_str!("../../ui/alerts.js")),
    ("app.css", "text/css; charset=utf-8", include_str!("../../ui/app.css")),
    ("icon.svg", "image/svg+xml", include_str!("../../ui/icon.svg")),
];

fn headers(content_type: &'static str) -> [(HeaderName, &'static str); 6] {
    [
        (header::CONTENT_TYPE, content_type),
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        // Revalidated on every load, so a new binary's dashboard shows at once.
        (header::CACHE_CONTROL, "no-cache"),
    ]
}

/// The page, for `/` and any `/ui/...` route.
pub(super) async fn page() -> Response {
    (headers("text/html; charset=utf-8"), INDEX).into_response()
}

/// `/ui/assets/{name}`.
pub(super) async fn asset(Path(name): Path<String>) -> Response {
    match ASSETS.iter().find(|(n, _, _)| *n == name) {
        Some((_, content_type, body)) => (headers(content_type), *body).into_response(),
        None => (StatusCode::NOT_FOUND, headers("text/plain; charset=utf-8"), "no such asset").into_response(),
    }
}
