//! A webhook receiver that records every request: its path, `webhook-id`
//! and JSON body, on a runtime of its own.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use serde_json::Value;

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    /// The path it was posted to (`/hook`).
    pub path: String,
    /// Its query string, if any.
    pub query: Option<String>,
    /// Its headers.
    pub headers: HeaderMap,
    /// Its `webhook-id` header.
    pub webhook_id: String,
    /// Its body (`null` when not JSON).
    pub body: Value,
}

impl Received {
    /// The ids of the runs it carries.
    pub fn run_ids(&self) -> Vec<String> {
        let runs = self.body["runs"].as_array().into_iter().flatten();
        runs.filter_map(|r| r["id"].as_str().map(str::to_string)).collect()
    }
}

/// The receiver; answers 200 to every POST.
pub struct Receiver {
    /// Its base URL (`http://127.0.0.1:port`).
    pub url: String,
    seen: Arc<Mutex<Vec<Received>>>,
    _runtime: tokio::runtime::Runtime,
}

impl Receiver {
    /// Listens on an ephemeral local port.
    pub fn start() -> Self {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen: Arc<Mutex<Vec<Received>>> = Arc::default();
        let notes = seen.clone();
        let app = axum::Router::new().fallback(axum::routing::post(
            move |uri: axum::http::Uri, headers: HeaderMap, body: String| {
                let notes = notes.clone();
                async move {
                    let webhook_id = headers.get("webhook-id").and_then(|v| v.to_str().ok()).unwrap_or("").into();
                    let body = serde_json::from_str(&body).unwrap_or(Value::Null);
                    let (path, query) = (uri.path().to_string(), uri.query().map(str::to_string));
                    notes.lock().unwrap().push(Received { path, query, headers, webhook_id, body });
                    "ok"
                }
            },
        ));
        runtime.spawn(async move { axum::serve(listener, app).await });
        Self { url, seen, _runtime: runtime }
    }

    /// `url` + `path`.
    pub fn at(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// Every request so far, in arrival order.
    pub fn received(&self) -> Vec<Received> {
        self.seen.lock().unwrap().clone()
    }

    /// Waits until `done` holds of the requests so far (at most 5
    /// minutes, a bound for a stuck server, not a timing), then returns them.
    pub fn wait_until(&self, what: &str, done: impl Fn(&[Received]) -> bool) -> Vec<Received> {
        let started = Instant::now();
        loop {
            let seen = self.received();
            if done(&seen) {
                return seen;
            }
            assert!(started.elapsed() < Duration::from_secs(300), "never happened: {what}; received {seen:#?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}
