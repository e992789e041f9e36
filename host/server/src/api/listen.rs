//! Accepting connections: how long a client may take to send its headers
//! or stay idle, and how many connections are served at once.
//!
//! Input: a bound listener, the router and the connection [`Limits`]. Each accepted
//! connection is served by hyper's HTTP/1 server with a header-read
//! deadline, which hyper restarts whenever a keep-alive connection waits for
//! its next request: a client that sends no header, a header byte by byte,
//! or nothing after its last response, is closed once the deadline passes.
//! At most `max` connections are served at once; one more is answered `503`
//! with a JSON body and closed at once, so the process never runs out of
//! file descriptors and a refused client learns why. On shutdown, no new
//! connection is accepted and those in flight finish their request.
//!
//! The cap is kept below the process's open-file limit (raised to its hard
//! limit first), leaving room for the store, plugins and webhook sockets.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::config::Limits;

/// Bytes hyper buffers for a request's head before answering 431 itself.
const HYPER_MAX_BUF: usize = 256 * 1024;

/// Headers hyper parses before answering 431 itself.
const HYPER_MAX_HEADERS: usize = 256;

/// File descriptors kept free for everything but client connections.
const RESERVED_FDS: u64 = 64;

/// Serves `router` on `listener` until `shutdown`, then lets the requests
/// in flight finish.
pub async fn serve(listener: TcpListener, router: Router, limits: Limits, shutdown: CancellationToken) {
    let max = effective_cap(limits.max_connections);
    let slots = Arc::new(Semaphore::new(max));
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    // hyper's own ceilings sit above the API's (see `error::header_limits`),
    // so a request between the two gets a JSON 431 rather than hyper's
    // bare one; the buffer bounds what one connection can hold.
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(HYPER_MAX_BUF)
        .max_headers(HYPER_MAX_HEADERS);
    let service = TowerToHyperService::new(router);
    loop {
        let (stream, _peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of descriptors or a connection reset while queued:
                    // neither is the listener's fault; back off and go on.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            metrics::counter!("runhook_connections_refused_total").increment(1);
            refuse(&stream, max);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let conn = http.serve_connection(TokioIo::new(stream), service.clone());
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// Tells a client over the cap why it is turned away, and closes at once:
/// a refusal must not hold a descriptor. The answer fits a fresh socket's
/// send buffer, so one non-blocking write delivers it.
fn refuse(stream: &TcpStream, max: usize) {
    let body = format!(r#"{{"detail":"the server is at its limit of {max} connections; retry later"}}"#);
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         retry-after: 1\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.try_write(response.as_bytes());
}

/// The configured cap, lowered to what the open-file limit allows.
fn effective_cap(configured: usize) -> usize {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if let (Some(cur), Some(max)) = (limit.current, limit.maximum)
        && cur < max
    {
        limit.current = Some(max);
        if setrlimit(Resource::Nofile, limit).is_err() {
            limit.current = Some(cur);
        }
    }
    let Some(files) = limit.current else {
        return configured;
    };
    let fits = usize::try_from(files.saturating_sub(RESERVED_FDS).max(1)).unwrap_or(usize::MAX);
    if fits < configured {
        tracing::warn!(
            configured,
            open_file_limit = files,
            serving = fits,
            "limits.max_connections lowered to fit the open-file limit"
        );
    }
    configured.min(fits)
}
