//! Three replicas on one Postgres database, under load, while one is
//! killed (SIGKILL) twice and restarted and another is paused (SIGSTOP)
//! past its leases and resumed: nothing acknowledged is lost, every
//! matching run reaches the receiver, none under two webhook-ids, no rule
//! acts on a run twice, and the receiver never has more requests in flight
//! than the endpoint's bound. One rule's transform plugin is uploaded
//! through the API; no replica has it on disk.
//!
//! Runs in the suite's Postgres pass (`RUNHOOK_E2E_DATABASE`); on the
//! embedded store there is one process per data directory, and it says so.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use serde_json::{Value, json};

use crate::common::plugin;
use crate::common::server::{API_KEY, Server, fresh_database};

const RUNS: usize = 10_000;
const BATCH: usize = 100;
const PER_ENDPOINT: usize = 2;
const LEASE_MS: u64 = 2000;

/// What the receiver saw: per path, each request's webhook-id and run ids.
#[derive(Default)]
struct Seen {
    requests: Mutex<Vec<(String, String, Vec<String>)>>,
    in_flight: AtomicUsize,
    most_in_flight: AtomicUsize,
    /// Runs of rule `all` whose inputs the uploaded plugin did not redact.
    unredacted: AtomicUsize,
}

fn receiver(rt: &tokio::runtime::Runtime) -> (String, Arc<Seen>) {
    let seen = Arc::new(Seen::default());
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let notes = seen.clone();
    let app = axum::Router::new().route(
        "/{rule}",
        axum::routing::post(
            move |axum::extract::Path(rule): axum::extract::Path<String>, headers: HeaderMap, body: String| {
                let notes = notes.clone();
                async move {
                    let now = notes.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                    notes.most_in_flight.fetch_max(now, Ordering::SeqCst);
                    // Long enough for concurrent requests to overlap.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    let id = headers.get("webhook-id").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
                    let payload: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
                    let runs = payload["runs"].as_array().cloned().unwrap_or_default();
                    let ids = runs.iter().filter_map(|r| r["id"].as_str().map(str::to_string)).collect();
                    if rule == "all" {
                        let plain = runs.iter().filter(|r| r["inputs"]["i"] != json!("[REDACTED]")).count();
                        notes.unredacted.fetch_add(plain, Ordering::SeqCst);
                    }
                    notes.requests.lock().unwrap().push((rule, id, ids));
                    notes.in_flight.fetch_sub(1, Ordering::SeqCst);
                    "ok"
                }
            },
        ),
    );
    rt.spawn(async move { axum::serve(listener, app).await });
    (base, seen)
}

fn run(i: usize) -> (String, Value) {
    let id = format!("0193b8f2-0000-7000-8000-{i:012}");
    let kind = if i.is_multiple_of(2) { "llm" } else { "chain" };
    let run = json!({"id": id, "name": "replicated", "run_type": kind, "session_name": "replicas",
                     "start_time": "2026-12-04T10:00:00Z", "end_time": "2026-12-04T10:00:01Z",
                     "inputs": {"i": i}, "outputs": {"ok": true}});
    (id, run)
}

/// A live replica that holds a rule lease now (its `runhook_rules_owned`
/// gauge), waiting for one while leases move.
fn owner(c: &reqwest::blocking::Client, replicas: &[Option<Server>]) -> usize {
    let started = Instant::now();
    loop {
        for (i, r) in replicas.iter().enumerate() {
            let Some(r) = r.as_ref() else { continue };
            let text = c.get(r.at("/metrics")).send().and_then(|r| r.text()).unwrap_or_default();
            let owned = text
                .lines()
                .find_map(|l| l.strip_prefix("runhook_rules_owned "))
                .and_then(|v| v.trim().parse::<f64>().ok());
            if owned.is_some_and(|n| n > 0.0) {
                return i;
            }
        }
        assert!(started.elapsed() < Duration::from_secs(60), "no replica holds a rule");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn replicas_lose_nothing_and_send_nothing_twice_when_one_dies_or_stalls() {
    let Some(pg) = std::env::var("RUNHOOK_E2E_DATABASE").ok().filter(|s| !s.is_empty()) else {
        eprintln!("skipped: replicas share a Postgres database; set RUNHOOK_E2E_DATABASE (tests/run.sh does)");
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (base, seen) = receiver(&rt);
    let url = fresh_database(&pg, "replicas");
    let lease = LEASE_MS.to_string();
    let per_endpoint = PER_ENDPOINT.to_string();
    let env = [
        ("RUNHOOK_DATABASE_URL", url.as_str()),
        ("RUNHOOK_SECRET_KEY", "qmfTl2cYjz1sG8kd3Sx1eH1QhP2b1kH2J4p8fQmVZ0c="),
        ("RUNHOOK_LEASE_MS", lease.as_str()),
        ("RUNHOOK_DELIVERY_PER_ENDPOINT_CONCURRENCY", per_endpoint.as_str()),
    ];
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    // No replica has a plugin file: they load the uploaded plugin from the database.
    let start = |i: usize| {
        let plugins = dirs[i].path().join("plugins");
        let mut env = env.to_vec();
        env.push(("RUNHOOK_PLUGINS_DIR", plugins.to_str().unwrap()));
        Server::start_on(&dirs[i].path().join("data"), &env)
    };
    let mut replicas: Vec<Option<Server>> = (0..3).map(|i| Some(start(i))).collect();

    let c = reqwest::blocking::Client::builder()
        .default_headers([("x-api-key".parse().unwrap(), API_KEY.parse().unwrap())].into_iter().collect())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let first = replicas[0].as_ref().unwrap();
    // The project exists before the rules that watch it.
    let (_, seed) = run(RUNS);
    assert!(c.post(first.at("/runs/batch")).json(&json!({"post": [seed]})).send().unwrap().status().is_success());
    let session = c.get(first.at("/sessions?name=replicas")).send().unwrap().json::<Value>().unwrap()[0]["id"].clone();
    let redact = std::fs::read(plugin("redact")).unwrap();
    let uploaded: Value = c.post(first.at("/api/v1/plugins?name=redact")).body(redact).send().unwrap().json().unwrap();
    let mut rules = HashMap::new();
    for (name, filter) in [("all", None), ("llm", Some("eq(run_type, \"llm\")"))] {
        let mut rule = json!({"display_name": name, "session_id": session, "interval_seconds": 1,
                              "webhooks": [{"url": format!("{base}/{name}")}]});
        if let Some(f) = filter {
            rule["filter"] = json!(f);
        } else {
            rule["plugins"] = json!({"transform": {"sha256": uploaded["sha256"], "config": {"keys": ["i"]}}});
        }
        let created: Value = c.post(first.at("/api/v1/runs/rules")).json(&rule).send().unwrap().json().unwrap();
        rules.insert(name, created["id"].as_str().expect("the rule is created").to_string());
    }

    // Ingest through the replicas in turn; replica 1 is killed twice and
    // restarted, replica 2 paused past its leases and resumed.
    let mut acked: Vec<(String, bool)> = Vec::new();
    let (mut paused, mut dead): (Option<(usize, Instant)>, Option<usize>) = (None, None);
    for (b, chunk) in (0..RUNS).collect::<Vec<_>>().chunks(BATCH).enumerate() {
        match b {
            // The victims hold rules, so their rules must move.
            20 | 50 => {
                let i = owner(&c, &replicas);
                let victim = replicas[i].take().unwrap();
                victim.signal("KILL");
                drop(victim);
                dead = Some(i);
            }
            35 | 65 => {
                let i = dead.take().unwrap();
                replicas[i] = Some(start(i));
            }
            75 => {
                let i = owner(&c, &replicas);
                replicas[i].as_ref().unwrap().signal("STOP");
                paused = Some((i, Instant::now()));
            }
            _ => {}
        }
        if let Some((i, since)) = paused
            && since.elapsed() > Duration::from_millis(LEASE_MS * 3)
        {
            replicas[i].as_ref().unwrap().signal("CONT");
            paused = None;
        }
        let stopped = paused.map(|(i, _)| i);
        let live: Vec<&Server> =
            replicas.iter().enumerate().filter(|(i, _)| Some(*i) != stopped).filter_map(|(_, r)| r.as_ref()).collect();
        let target = live[b % live.len()];
        let (ids, posts): (Vec<String>, Vec<Value>) = chunk.iter().map(|i| run(*i)).unzip();
        let ok = c
            .post(target.at("/runs/batch"))
            .json(&json!({"post": posts}))
            .send()
            .is_ok_and(|r| r.status().is_success());
        acked.extend(ids.into_iter().zip(chunk.iter().map(|i| i.is_multiple_of(2))).filter(|_| ok));
    }
    if let Some((i, since)) = paused {
        std::thread::sleep(Duration::from_millis(LEASE_MS * 3).saturating_sub(since.elapsed()));
        replicas[i].as_ref().unwrap().signal("CONT");
    }
    assert!(acked.len() >= RUNS / 2, "most batches were acknowledged: {}", acked.len());

    // Every acknowledged run is stored.
    let any = replicas[0].as_ref().unwrap();
    for chunk in acked.chunks(BATCH) {
        let ids: Vec<&String> = chunk.iter().map(|(id, _)| id).collect();
        let found: Value =
            c.post(any.at("/runs/query")).json(&json!({"id": ids, "limit": BATCH})).send().unwrap().json().unwrap();
        assert_eq!(found["runs"].as_array().map(Vec::len), Some(chunk.len()), "an acknowledged run was lost");
    }

    // Every matching acknowledged run reaches the receiver.
    let wanted = |rule: &str| -> HashSet<String> {
        acked.iter().filter(|(_, llm)| rule == "all" || *llm).map(|(id, _)| id.clone()).collect()
    };
    let delivered = |rule: &str| -> HashSet<String> {
        let requests = seen.requests.lock().unwrap();
        requests.iter().filter(|(r, _, _)| r == rule).flat_map(|(_, _, ids)| ids.iter().cloned()).collect()
    };
    let started = Instant::now();
    while !["all", "llm"].iter().all(|r| wanted(r).is_subset(&delivered(r))) {
        let missing: Vec<usize> = ["all", "llm"].iter().map(|r| wanted(r).difference(&delivered(r)).count()).collect();
        assert!(started.elapsed() < Duration::from_secs(300), "runs never delivered (all, llm): {missing:?}");
        std::thread::sleep(Duration::from_millis(200));
    }

    // No run under two webhook-ids; the rule log has one line per run it sent.
    let requests = seen.requests.lock().unwrap().clone();
    for (rule, id) in &rules {
        let mut ids_of: HashMap<&String, HashSet<&String>> = HashMap::new();
        for (_, webhook_id, runs) in requests.iter().filter(|(r, _, _)| r == rule) {
            for run in runs {
                ids_of.entry(run).or_default().insert(webhook_id);
            }
        }
        let twice: Vec<_> = ids_of.iter().filter(|(_, ids)| ids.len() > 1).collect();
        assert!(twice.is_empty(), "rule {rule}: runs sent under two webhook-ids: {:?}", &twice[..twice.len().min(3)]);
        let mut lines = 0;
        loop {
            let page: Value = c
                .get(any.at(&format!("/runs/rules/{id}/logs?limit=1000&offset={lines}")))
                .send()
                .unwrap()
                .json()
                .unwrap();
            let n = page.as_array().map_or(0, Vec::len);
            lines += n;
            if n < 1000 {
                break;
            }
        }
        assert_eq!(lines, ids_of.len(), "rule {rule}: one log line per run sent");
    }
    assert_eq!(seen.unredacted.load(Ordering::SeqCst), 0, "every replica ran the uploaded plugin");
    let most = seen.most_in_flight.load(Ordering::SeqCst);
    assert!(most <= PER_ENDPOINT, "the receiver had {most} requests in flight, more than the bound {PER_ENDPOINT}");
    eprintln!("replicas: {} runs acknowledged, {} requests, at most {most} in flight", acked.len(), requests.len());
}
