//! Delivery under faults: the real sender (reqwest, the SSRF guard, the
//! policy) against real sockets that misbehave in every way the policy
//! names. Each case asserts the attempts made, their classes, and the outcome.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use runhook_core::model::{RuleId, Timestamp, WebhookTarget};
use runhook_server::config::DeliverySettings;
use runhook_server::delivery::drive::Journal;
use runhook_server::delivery::{AttemptReport, DeliveryOutcome, Sender, SlotGuard, drive};
use runhook_store::{Claim, ClaimOutcome, ClaimToken, DeliveryStatus, OutboxRow};

/// What the receiver does with its `n`th request (from 0).
#[derive(Clone)]
enum Act {
    Respond(&'static str),
    Reset,
    Stall(Duration, &'static str),
    EndlessBody,
    HugeBody(u64),
}

struct Receiver {
    url: String,
    requests: Arc<AtomicUsize>,
    written: Arc<AtomicU64>,
}

/// A receiver on a real socket that acts out `script` (the last act repeats).
async fn receiver(script: Vec<Act>) -> Receiver {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook?token=s3cret", listener.local_addr().unwrap());
    let requests = Arc::new(AtomicUsize::new(0));
    let written = Arc::new(AtomicU64::new(0));
    let (count, bytes) = (requests.clone(), written.clone());
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (script, count, bytes) = (script.clone(), count.clone(), bytes.clone());
            tokio::spawn(async move { connection(stream, &script, &count, &bytes).await });
        }
    });
    Receiver { url, requests, written }
}

async fn connection(mut s: TcpStream, script: &[Act], count: &AtomicUsize, written: &AtomicU64) {
    while read_request(&mut s).await {
        let n = count.fetch_add(1, Ordering::SeqCst);
        let act = script[n.min(script.len() - 1)].clone();
        match act {
            Act::Respond(raw) => {
                if s.write_all(raw.as_bytes()).await.is_err() {
                    return;
                }
            }
            Act::Reset => {
                // A zero linger makes the close a reset (RST); it never blocks.
                #[allow(deprecated)]
                let _ = s.set_linger(Some(Duration::ZERO));
                return;
            }
            Act::Stall(wait, raw) => {
                tokio::time::sleep(wait).await;
                let _ = s.write_all(raw.as_bytes()).await;
                return;
            }
            Act::EndlessBody => {
                let _ = s.write_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n").await;
                while s.write_all(b"5\r\nhello\r\n").await.is_ok() {
                    written.fetch_add(5, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                return;
            }
            Act::HugeBody(len) => {
                let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {len}\r\n\r\n");
                let _ = s.write_all(head.as_bytes()).await;
                let chunk = vec![b'x'; 64 * 1024];
                let mut sent = 0u64;
                while sent < len && s.write_all(&chunk).await.is_ok() {
                    sent += chunk.len() as u64;
                    written.fetch_add(chunk.len() as u64, Ordering::SeqCst);
                }
                return;
            }
        }
    }
}

/// Reads one request (headers and a content-length body); false at EOF.
async fn read_request(s: &mut TcpStream) -> bool {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte).await {
            Ok(1) => buf.push(byte[0]),
            _ => return false,
        }
    }
    let head = String::from_utf8_lossy(&buf).to_ascii_lowercase();
    let len: usize =
        head.lines().find_map(|l| l.strip_prefix("content-length:")).and_then(|v| v.trim().parse().ok()).unwrap_or(0);
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).await.is_ok()
}

/// One recorded attempt: class, status, when recorded, how long it took.
type Note = (String, Option<u16>, Instant, Duration);

#[derive(Default)]
struct Notes(Mutex<Vec<Note>>);

/// Every claim is granted (no store: one worker, one delivery).
impl Journal for Notes {
    fn claim(&self, row: &OutboxRow) -> BoxFuture<'static, Option<ClaimOutcome>> {
        let claim = Claim { token: ClaimToken::new(), until: Timestamp::now() };
        let attempts = row.attempts;
        Box::pin(async move { Some(ClaimOutcome::Claimed { claim, attempts }) })
    }

    fn record(
        &self,
        _row: &OutboxRow,
        _claim: ClaimToken,
        _n: u32,
        r: &AttemptReport,
        _status: DeliveryStatus,
    ) -> BoxFuture<'static, bool> {
        self.0.lock().unwrap().push((r.class.label().to_string(), r.class.status(), Instant::now(), r.duration));
        Box::pin(async { true })
    }
}

fn row(url: &str) -> OutboxRow {
    let target = WebhookTarget::new(url);
    OutboxRow::queued(RuleId::new_v4(), &target, r#"{"rule_id":"x","runs":[]}"#.into(), vec![])
}

fn loopback_allowed() -> DeliverySettings {
    DeliverySettings { allow_networks: vec!["127.0.0.0/8".parse().unwrap()], ..DeliverySettings::default() }
}

/// Delivers one row to `url`; returns the outcome and the attempt classes.
async fn deliver(url: &str, settings: &DeliverySettings) -> (DeliveryOutcome, Vec<String>, Arc<Notes>) {
    let sender = Sender::new(settings).unwrap();
    let notes = Arc::new(Notes::default());
    let outcome =
        drive(&sender, notes.as_ref(), settings, row(url), &CancellationToken::new(), SlotGuard::untracked()).await;
    let classes = notes.0.lock().unwrap().iter().map(|n| n.0.clone()).collect();
    (outcome, classes, notes)
}

const OK: &str = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
const E500: &str = "HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\n\r\n";

#[tokio::test]
async fn connection_refused_is_retried_twice_then_fails() {
    let port = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap().port();
    let (outcome, classes, _) = deliver(&format!("http://127.0.0.1:{port}/hook"), &loopback_allowed()).await;
    assert_eq!(outcome, DeliveryOutcome::Failed);
    assert_eq!(classes, ["transport", "transport", "transport"]);
}

#[tokio::test]
async fn reset_before_response_is_retried_twice_then_fails() {
    let r = receiver(vec![Act::Reset]).await;
    let (outcome, classes, _) = deliver(&r.url, &loopback_allowed()).await;
    assert_eq!(outcome, DeliveryOutcome::Failed);
    assert_eq!(classes, ["transport", "transport", "transport"]);
    assert_eq!(r.requests.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn headers_after_six_seconds_time_out_without_retry() {
    let r = receiver(vec![Act::Stall(Duration::from_secs(6), OK)]).await;
    let (outcome, classes, notes) = deliver(&r.url, &loopback_allowed()).await;
    assert_eq!(outcome, DeliveryOutcome::Failed);
    assert_eq!(classes, ["timeout"]);
    assert_eq!(r.requests.load(Ordering::SeqCst), 1);
    // The deadline, not the receiver, ended the attempt.
    assert!(notes.0.lock().unwrap()[0].3 < Duration::from_secs(6));
}

#[tokio::test]
async fn a_body_that_never_ends_is_not_waited_for() {
    let r = receiver(vec![Act::EndlessBody]).await;
    let (outcome, classes, notes) = deliver(&r.url, &loopback_allowed()).await;
    assert_eq!(outcome, DeliveryOutcome::Delivered);
    assert_eq!(classes, ["success"]);
    // The attempt ended long before the 5 s deadline would have.
    assert!(notes.0.lock().unwrap()[0].3 < Duration::from_secs(5));
}

#[tokio::test]
async fn a_500_then_200_is_delivered_on_the_retry() {
    let r = receiver(vec![Act::Respond(E500), Act::Respond(OK)]).await;
    let (outcome, classes, notes) = deliver(&r.url, &loopback_allowed()).await;
    assert_eq!(outcome, DeliveryOutcome::Delivered);
    assert_eq!(classes, ["server_error", "success"]);
    let notes = notes.0.lock().unwrap();
    assert_eq!((notes[0].1, notes[1].1), (Some(500), Some(200)));
}

#[tokio::test]
async fn three_500s_fail_after_two_retries() {
    let r = receiver(vec![Act::Respond(E500)]).await;
    let (outcome, classes, notes) = deliver(&r.url, &loopback_allowed()).await;
    assert_eq!(outcome, DeliveryOutcome::Failed);
    assert_eq!(classes, ["server_error", "server_error", "server_error"]);
    assert_eq!(r.requests.load(Ordering::SeqCst), 3);
    // Exponential backoff: the second wait is longer than the first.
    let n = notes.0.lock().unwrap();
    let (first, second) = (n[1].2 - n[0].2, n[2].2 - n[1].2);
    assert!(first >= Duration::from_millis(500) && second >= Duration::from_millis(1000), "{first:?} {second:?}");
}

#[tokio::test]
async fn a_503_with_retry_after_waits_as_asked() {
    let r = receiver(vec![
        Act::Respond("HTTP/1.1 503 Service Unavailable\r\nretry-after: 2\r\ncontent-length: 0\r\n\r\n"),
        Act::Respond(OK),
    ])
    .await;
    let (outcome, classes, notes) = deliver(&r.url, &loopback_allowed()).await;
    assert_eq!(outcome, DeliveryOutcome::Delivered);
    assert_eq!(classes, ["server_error", "success"]);
    let n = notes.0.lock().unwrap();
    assert!(n[1].2 - n[0].2 >= Duration::from_secs(2), "retried before Retry-After");
}

#[tokio::test]
async fn a_404_and_a_429_fail_without_retry() {
    for raw in [
        "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n",
        "HTTP/1.1 429 Too Many Requests\r\nretry-after: 1\r\ncontent-length: 0\r\n\r\n",
    ] {
        let r = receiver(vec![Act::Respond(raw)]).await;
        let (outcome, classes, _) = deliver(&r.url, &loopback_allowed()).await;
        assert_eq!(outcome, DeliveryOutcome::Failed, "{raw}");
        assert_eq!(classes, ["client_error"], "{raw}");
        assert_eq!(r.requests.load(Ordering::SeqCst), 1);
    }
}

#[tokio::test]
async fn a_302_is_not_followed() {
    let elsewhere = receiver(vec![Act::Respond(OK)]).await;
    let location = format!("HTTP/1.1 302 Found\r\nlocation: {}\r\ncontent-length: 0\r\n\r\n", elsewhere.url);
    let r = receiver(vec![Act::Respond(Box::leak(location.into_boxed_str()))]).await;
    let (outcome, classes, _) = deliver(&r.url, &loopback_allowed()).await;
    assert_eq!(outcome, DeliveryOutcome::Failed);
    assert_eq!(classes, ["redirect"]);
    assert_eq!(elsewhere.requests.load(Ordering::SeqCst), 0, "the redirect was followed");
}

#[tokio::test]
async fn a_one_gigabyte_body_is_not_read() {
    let r = receiver(vec![Act::HugeBody(1 << 30)]).await;
    let (outcome, classes, _) = deliver(&r.url, &loopback_allowed()).await;
    assert_eq!(outcome, DeliveryOutcome::Delivered);
    assert_eq!(classes, ["success"]);
    // Let the receiver notice the closed connection, then count what it sent.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let sent = r.written.load(Ordering::SeqCst);
    assert!(sent < 64 << 20, "the sender accepted {sent} bytes of a body it should ignore");
}

#[tokio::test]
async fn loopback_and_private_targets_are_refused_by_default() {
    let r = receiver(vec![Act::Respond(OK)]).await;
    let port = r.url.split(':').nth(2).unwrap().split('/').next().unwrap().to_string();
    let closed = DeliverySettings::default();
    for url in [
        r.url.clone(),
        format!("http://localhost:{port}/hook"),
        "http://10.0.0.1/hook".into(),
        "http://169.254.169.254/latest/meta-data".into(),
        "http://[::1]/hook".into(),
    ] {
        let (outcome, classes, _) = deliver(&url, &closed).await;
        assert_eq!(outcome, DeliveryOutcome::Failed, "{url}");
        assert_eq!(classes, ["forbidden"], "{url}");
    }
    assert_eq!(r.requests.load(Ordering::SeqCst), 0, "a refused target was contacted");
    // Allowed when the operator lists the network; names resolve through the guard.
    let (outcome, _, _) = deliver(&format!("http://localhost:{port}/hook"), &loopback_allowed()).await;
    assert_eq!(outcome, DeliveryOutcome::Delivered);
    assert_eq!(r.requests.load(Ordering::SeqCst), 1);
}

/// Queues `n` deliveries to each URL, in that order, through a rule cycle.
async fn queue(store: &runhook_store_sqlite::SqliteStore, targets: &[(&str, usize)]) {
    use runhook_core::model::{RuleSpec, SessionId};
    use runhook_store::{CycleCommit, RuleStore};
    let spec = RuleSpec { is_enabled: false, ..RuleSpec::new("fairness", SessionId::new_v4(), vec![]) };
    let rule = store.create_rule(RuleId::new_v4(), &spec).await.unwrap();
    let state = store.rule_state(rule.id).await.unwrap().unwrap();
    let outbox =
        targets.iter().flat_map(|(url, n)| (0..*n).map(|_| OutboxRow { rule_id: rule.id, ..row(url) })).collect();
    let commit = CycleCommit {
        rule_id: rule.id,
        from_watermark: state.watermark,
        to_watermark: state.watermark,
        window_start: state.window_end,
        window_end: state.window_end,
        candidates: 0,
        logs: vec![],
        outbox,
        queued: None,
        examples: vec![],
        held: vec![],
        released: vec![],
        feedback: vec![],
        error: None,
        lease: None,
    };
    store.commit_cycle(commit).await.unwrap();
}

#[tokio::test]
async fn a_slow_endpoint_holds_only_its_own_slots() {
    use runhook_store::{DeliveryQuery, OutboxStore};
    // 40 deliveries to a receiver that answers after 3 s, queued before 10
    // to a prompt one: the slow one gets its 8 slots, the prompt one is
    // served meanwhile.
    let slow = receiver(vec![Act::Stall(Duration::from_secs(3), OK)]).await;
    let prompt = receiver(vec![Act::Respond(OK)]).await;
    let dir = tempfile::tempdir().unwrap();
    let store =
        runhook_store_sqlite::SqliteStore::open(dir.path(), runhook_core::secrets::Keyring::generate()).await.unwrap();
    queue(&store, &[(&slow.url, 40), (&prompt.url, 10)]).await;
    let store: Arc<dyn OutboxStore> = Arc::new(store);
    let stop = CancellationToken::new();
    let settings = loopback_allowed();
    assert_eq!(settings.per_endpoint_concurrency, 8);
    let worker = tokio::spawn(runhook_server::delivery::run(store.clone(), settings, stop.clone()));
    let delivered = DeliveryQuery { status: Some("delivered".into()), limit: 100, ..Default::default() };
    let started = Instant::now();
    while store.list_deliveries(&delivered).await.unwrap().len() < 10 {
        assert!(started.elapsed() < Duration::from_secs(20), "the prompt receiver's deliveries did not complete");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let done = store.list_deliveries(&delivered).await.unwrap();
    // Every delivery done so far went to the prompt receiver, while the
    // slow one held exactly its bound of requests.
    assert!(done.iter().all(|d| d.url == prompt.url), "a slow delivery finished first");
    assert_eq!(prompt.requests.load(Ordering::SeqCst), 10);
    assert_eq!(slow.requests.load(Ordering::SeqCst), 8);
    stop.cancel();
    worker.await.unwrap();
}

#[tokio::test]
async fn finished_deliveries_past_retention_are_deleted_pending_ones_kept() {
    use runhook_server::delivery::retention::{self, Schedule};
    use runhook_store::DeliveryQuery;
    let prompt = receiver(vec![Act::Respond(OK)]).await;
    let stalled = receiver(vec![Act::Stall(Duration::from_secs(300), OK)]).await;
    let dir = tempfile::tempdir().unwrap();
    let store =
        runhook_store_sqlite::SqliteStore::open(dir.path(), runhook_core::secrets::Keyring::generate()).await.unwrap();
    queue(&store, &[(&prompt.url, 3), (&stalled.url, 1)]).await;
    let store: Arc<dyn runhook_store::Store> = Arc::new(store);
    let stop = CancellationToken::new();
    // The stalled delivery stays in flight (pending) for the whole test.
    let settings = DeliverySettings { attempt_timeout: Duration::from_secs(300), ..loopback_allowed() };
    let worker = tokio::spawn(runhook_server::delivery::run(store.clone(), settings, stop.clone()));
    let all = DeliveryQuery { limit: 100, ..Default::default() };
    let delivered = DeliveryQuery { status: Some("delivered".into()), ..all.clone() };
    let started = Instant::now();
    while store.list_deliveries(&delivered).await.unwrap().len() < 3 {
        assert!(started.elapsed() < Duration::from_secs(20), "the deliveries did not complete");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stalled_id = store.list_deliveries(&all).await.unwrap().into_iter().find(|d| d.url == stalled.url).unwrap().id;

    // Kept 50 ms: the three finished ones go, the one still in flight stays.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let schedule = Schedule { first: Duration::ZERO, every: Duration::from_millis(50) };
    let pruner =
        tokio::spawn(retention::run(store.clone(), "pruner".into(), Duration::from_millis(50), schedule, stop.clone()));
    while !store.list_deliveries(&delivered).await.unwrap().is_empty() {
        assert!(started.elapsed() < Duration::from_secs(20), "finished deliveries were not deleted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let left = store.list_deliveries(&all).await.unwrap();
    assert_eq!(left.iter().map(|d| (d.id, d.status.as_str())).collect::<Vec<_>>(), [(stalled_id, "pending")]);
    stop.cancel();
    pruner.await.unwrap();
    // The worker would wait for the stalled attempt to end.
    worker.abort();
}

#[tokio::test]
async fn queued_and_redelivered_deliveries_start_without_waiting_for_the_poll() {
    use runhook_store::{DeliveryQuery, OutboxStore};
    let prompt = receiver(vec![Act::Respond(OK)]).await;
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        runhook_store_sqlite::SqliteStore::open(dir.path(), runhook_core::secrets::Keyring::generate()).await.unwrap(),
    );
    // An hour between polls: within this test only the bell can start a delivery
    // after the worker's first read of the outbox.
    let settings = DeliverySettings { poll_interval: Duration::from_secs(3600), ..loopback_allowed() };
    let stop = CancellationToken::new();
    let worker = tokio::spawn(runhook_server::delivery::run(store.clone(), settings, stop.clone()));
    let delivered = DeliveryQuery { status: Some("delivered".into()), limit: 100, ..Default::default() };
    let started = Instant::now();
    let wait_for = |n: usize, what: &'static str| {
        let store = store.clone();
        let delivered = delivered.clone();
        async move {
            while store.list_deliveries(&delivered).await.unwrap().len() < n {
                assert!(started.elapsed() < Duration::from_secs(20), "{what}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    // The first is found by the worker's first read or by the bell; once it
    // is delivered, that read is over.
    queue(&store, &[(&prompt.url, 1)]).await;
    wait_for(1, "the first delivery did not complete").await;
    queue(&store, &[(&prompt.url, 3)]).await;
    wait_for(4, "deliveries queued after the worker's first read waited for the poll").await;
    assert_eq!(prompt.requests.load(Ordering::SeqCst), 4);

    let first = store.list_deliveries(&delivered).await.unwrap().pop().unwrap().id;
    assert!(store.redeliver(first).await.unwrap());
    while prompt.requests.load(Ordering::SeqCst) < 5 {
        assert!(started.elapsed() < Duration::from_secs(20), "the redelivery waited for the poll");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    loop {
        let d = store.get_delivery(first).await.unwrap().unwrap();
        if d.status == "delivered" && d.history.len() == 2 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "the redelivery was not recorded: {d:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.cancel();
    worker.await.unwrap();
}

#[tokio::test]
async fn one_slot_per_endpoint_delivers_in_queue_order_retries_included() {
    use runhook_store::{DeliveryQuery, OutboxStore};
    // Records each request's webhook-id; the third request fails once.
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let sink = seen.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: axum::http::HeaderMap| {
            let sink = sink.clone();
            async move {
                let id = headers.get("webhook-id").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
                let mut seen = sink.lock().unwrap();
                seen.push(id);
                if seen.len() == 3 { axum::http::StatusCode::INTERNAL_SERVER_ERROR } else { axum::http::StatusCode::OK }
            }
        }),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        runhook_store_sqlite::SqliteStore::open(dir.path(), runhook_core::secrets::Keyring::generate()).await.unwrap(),
    );
    queue(&store, &[(&url, 10)]).await;
    let all = DeliveryQuery { limit: 100, ..Default::default() };
    // The order they were queued in, which is their due order.
    let mut listed = store.list_deliveries(&all).await.unwrap();
    listed.sort_by_key(|d| (d.created_at, d.id));
    let queued: Vec<String> = listed.iter().map(|d| d.id.to_string()).collect();
    let settings =
        DeliverySettings { per_endpoint_concurrency: 1, backoff: Duration::from_millis(50), ..loopback_allowed() };
    let stop = CancellationToken::new();
    let worker = tokio::spawn(runhook_server::delivery::run(store.clone(), settings, stop.clone()));
    let started = Instant::now();
    while seen.lock().unwrap().len() < 11 {
        assert!(started.elapsed() < Duration::from_secs(20), "deliveries did not complete: {:?}", seen.lock().unwrap());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.cancel();
    worker.await.unwrap();
    // The failed third one is retried before the fourth is sent.
    let mut expected = queued.clone();
    expected.insert(3, queued[2].clone());
    assert_eq!(*seen.lock().unwrap(), expected);
}
