//! `runhook-bench deliveries`: webhook deliveries per second to a local
//! receiver, beside a bare reqwest loop to the same receiver.
//!
//! runhook's side is the whole delivery path: N deliveries are queued in a
//! fresh store's outbox (sealed URL and header, as a rule cycle writes
//! them), then the delivery worker claims, unseals, signs, sends and
//! records each one; the clock stops when the outbox holds no pending row.
//! The baseline posts the same body N times with a bare `reqwest::Client`
//! at the same concurrency (the per-endpoint bound, since all deliveries go
//! to one endpoint). Both run in this process against one axum receiver;
//! the ratio is the figure to compare across machines. The three are
//! measured in turn, several rounds, and the medians reported: on a shared
//! machine the speed drifts within a run, and a ratio of measurements
//! taken seconds apart is only as good as the drift is slow. The worker
//! records its metrics into the same Prometheus registry `serve` installs.
//! Beside the CPU time per delivery, runhook's line shows how much of it is
//! SQLite's own work (the worker's store batches, timed on their threads),
//! so the cost of durability is told apart from the worker's machinery.
//!
//! With `--postgres URL`, runhook's path is measured again on a fresh
//! Postgres database, with one worker and with three (three replicas'
//! workers on one database, in this process): every delivery goes to one
//! endpoint, whose bound holds across the replicas, so three workers share
//! the same number of requests in flight as one.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use clap::Args;
use tokio_util::sync::CancellationToken;

use runhook_core::model::{RuleId, RuleSpec, SessionId, Timestamp, WebhookTarget};
use runhook_core::secrets::Keyring;
use runhook_server::config::DeliverySettings;
use runhook_store::{CycleCommit, OutboxRow, Store};
use runhook_store_sqlite::{DirectCpu, SqliteStore};

use crate::process::{cpu_since, cpu_time};

#[derive(Debug, Args)]
pub(crate) struct DeliveryBenchArgs {
    /// Deliveries per measurement.
    #[arg(long, default_value_t = 20_000)]
    deliveries: usize,
    /// Sign every delivery (Standard Webhooks), as a rule with a secret does.
    #[arg(long)]
    signed: bool,
    /// Rounds of the three measurements; medians are reported.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=50))]
    rounds: u32,
    /// How long the receiver takes to answer each webhook, in milliseconds
    /// (0: at once). A real receiver takes milliseconds: with it, the rate
    /// is bound by concurrency over latency, and runhook's own cost per
    /// delivery (a claim committed before each send) shows less.
    #[arg(long, default_value_t = 0)]
    receiver_ms: u64,
    /// A Postgres server (`postgres://user@host/db`) to measure on too.
    #[arg(long)]
    postgres: Option<String>,
}

pub(crate) fn run(args: &DeliveryBenchArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(bench(args))
}

/// A local receiver answering 200 to every POST; returns its URL and the
/// count of requests it received.
async fn receiver(stop: CancellationToken, delay: Duration) -> anyhow::Result<(String, Arc<AtomicUsize>)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/hook?token=bench-secret", listener.local_addr()?);
    let received = Arc::new(AtomicUsize::new(0));
    let count = received.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |_body: axum::body::Bytes| {
            count.fetch_add(1, Ordering::Relaxed);
            async move {
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                "ok"
            }
        }),
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).with_graceful_shutdown(stop.cancelled_owned()).await;
    });
    Ok((url, received))
}

fn body() -> String {
    serde_json::json!({"rule_id": RuleId::new_v4(), "runs": [crate::sample_run()], "feedback_stats": {}}).to_string()
}

/// Runs `one` `n` times from `concurrency` tasks; the time it all took.
async fn concurrently<F, Fut>(n: usize, concurrency: usize, one: F) -> anyhow::Result<Duration>
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (one, next) = (one.clone(), next.clone());
        tasks.spawn(async move {
            while next.fetch_add(1, Ordering::Relaxed) < n {
                one().await?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    Ok(started.elapsed())
}

async fn bare_loop(url: &str, body: &str, n: usize, concurrency: usize) -> anyhow::Result<Duration> {
    let client = reqwest::Client::builder().no_proxy().build()?;
    let (url, body) = (url.to_string(), body.to_string());
    concurrently(n, concurrency, move || {
        let request = client.post(&url).header("content-type", "application/json").body(body.clone());
        async move {
            let resp = request.send().await?;
            anyhow::ensure!(resp.status().is_success(), "receiver answered {}", resp.status());
            let _ = resp.bytes().await;
            Ok(())
        }
    })
    .await
}

async fn sender_loop(url: &str, body: &str, n: usize, concurrency: usize) -> anyhow::Result<Duration> {
    let sender = runhook_server::delivery::Sender::new(&runhook_server::config::DeliverySettings::loopback_allowed())?;
    let target = WebhookTarget::new(url);
    let row = Arc::new(OutboxRow::queued(RuleId::new_v4(), &target, body.to_string(), vec![]));
    concurrently(n, concurrency, move || {
        let (sender, row) = (sender.clone(), row.clone());
        async move {
            let report = sender.attempt(&row, 1).await;
            anyhow::ensure!(report.class.label() == "success", "attempt failed: {:?}", report.class);
            Ok(())
        }
    })
    .await
}

/// runhook's path: its wall and CPU time, and the CPU time of its store
/// batches meanwhile.
async fn runhook_path(
    args: &DeliveryBenchArgs,
    url: &str,
    received: &AtomicUsize,
    body: &str,
) -> anyhow::Result<(Took, DirectCpu)> {
    let dir = tempfile::tempdir()?;
    let sqlite = Arc::new(SqliteStore::open(dir.path(), Keyring::generate()).await?);
    let store: Arc<dyn Store> = sqlite.clone();
    queue(args, store.as_ref(), url, body).await?;
    // Copying the queued bodies from the log into the database is part of
    // queueing them; left to the first commit past the log's limit, the
    // drain would pay for it or not depending on how many were queued.
    sqlite.checkpoint().await?;
    let settings = runhook_server::config::DeliverySettings::loopback_allowed();
    let stop = CancellationToken::new();
    let received_before = received.load(Ordering::Relaxed);
    let launched = Instant::now();
    let worker = tokio::spawn(runhook_server::delivery::run(store.clone(), settings, stop.clone()));
    // The clock starts at the first delivery: what the worker does once at
    // start (building its HTTP client, loading TLS roots) is not throughput.
    while received.load(Ordering::Relaxed) == received_before {
        anyhow::ensure!(launched.elapsed() < Duration::from_secs(60), "no delivery arrived in 60 s");
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    let (started, cpu_before, store_before) = (Instant::now(), cpu_time(), sqlite.delivery_cpu());
    loop {
        // Counting the outbox competes with the worker for the database,
        // so it waits until the receiver has had every delivery.
        let arrived = received.load(Ordering::Relaxed) - received_before;
        if arrived >= args.deliveries && store.outbox_stats().await?.0 == 0 {
            break;
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(600),
            "{} deliveries still pending after 10 min",
            args.deliveries.saturating_sub(arrived)
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let took = Took { wall: started.elapsed(), cpu: cpu_since(cpu_before) };
    let store_cpu = sqlite.delivery_cpu().since(store_before);
    stop.cancel();
    worker.await?;
    let failed = store
        .list_deliveries(&runhook_store::DeliveryQuery {
            status: Some("failed".into()),
            limit: 1,
            ..Default::default()
        })
        .await?;
    anyhow::ensure!(failed.is_empty(), "a delivery failed: {:?}", failed[0].last_error);
    Ok((took, store_cpu))
}

/// runhook's path on a fresh Postgres database on `server`, with `workers`
/// delivery workers (one per replica) on it: its wall and CPU time.
async fn postgres_path(
    args: &DeliveryBenchArgs,
    server: &str,
    workers: usize,
    url: &str,
    received: &AtomicUsize,
    body: &str,
) -> anyhow::Result<Took> {
    let database = crate::postgres::fresh_database(server)?;
    let keys = Keyring::generate();
    let mut stores: Vec<Arc<dyn Store>> = Vec::new();
    for _ in 0..workers {
        stores.push(Arc::new(runhook_store_postgres::PgStore::open(&database, keys.clone()).await?));
    }
    queue(args, stores[0].as_ref(), url, body).await?;
    let stop = CancellationToken::new();
    let received_before = received.load(Ordering::Relaxed);
    let (started, cpu_before) = (Instant::now(), cpu_time());
    let running: Vec<_> = stores
        .iter()
        .map(|s| {
            let settings = runhook_server::config::DeliverySettings::loopback_allowed();
            tokio::spawn(runhook_server::delivery::run(s.clone(), settings, stop.clone()))
        })
        .collect();
    loop {
        let arrived = received.load(Ordering::Relaxed) - received_before;
        if arrived >= args.deliveries && stores[0].outbox_stats().await?.0 == 0 {
            break;
        }
        anyhow::ensure!(started.elapsed() < Duration::from_secs(600), "deliveries still pending after 10 min");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let took = Took { wall: started.elapsed(), cpu: cpu_since(cpu_before) };
    stop.cancel();
    for w in running {
        w.await?;
    }
    Ok(took)
}

/// Queues `args.deliveries` deliveries of `body` to `url` in `store`, as
/// rule cycles do, a thousand per commit.
async fn queue(args: &DeliveryBenchArgs, store: &dyn Store, url: &str, body: &str) -> anyhow::Result<()> {
    let headers = [("x-team".to_string(), "bench-header-secret".to_string())].into_iter().collect();
    let spec = RuleSpec {
        is_enabled: false,
        max_runs_per_payload: 1,
        signing_secret: args.signed.then(|| "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into()),
        ..RuleSpec::new(
            "bench",
            SessionId::new_v4(),
            vec![WebhookTarget { headers: Some(headers), ..WebhookTarget::new(url) }],
        )
    };
    let rule = store.create_rule(RuleId::new_v4(), &spec).await?;
    let state = store.rule_state(rule.id).await?.ok_or_else(|| anyhow::anyhow!("rule vanished"))?;
    let target = &spec.webhooks[0];
    for chunk in (0..args.deliveries).collect::<Vec<_>>().chunks(1000) {
        let outbox = chunk
            .iter()
            .map(|_| OutboxRow::queued(rule.id, target, body.to_string(), spec.signing_secrets(Timestamp::now())))
            .collect();
        store
            .commit_cycle(CycleCommit {
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
            })
            .await?;
    }
    Ok(())
}

/// A measurement: its wall time and the CPU time the process used meanwhile.
#[derive(Debug, Clone, Copy)]
struct Took {
    wall: Duration,
    cpu: Option<Duration>,
}

/// Measures `phase`'s wall time and the process's CPU time meanwhile.
async fn measured(phase: impl std::future::Future<Output = anyhow::Result<Duration>>) -> anyhow::Result<Took> {
    let before = cpu_time();
    let wall = phase.await?;
    Ok(Took { wall, cpu: cpu_since(before) })
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

async fn bench(args: &DeliveryBenchArgs) -> anyhow::Result<()> {
    // Metrics are recorded as `serve` records them, into the Prometheus
    // registry; without a recorder the worker's metric calls would cost nothing.
    let _metrics = runhook_server::app::metrics_handle();
    let stop = CancellationToken::new();
    let (url, received) = receiver(stop.clone(), Duration::from_millis(args.receiver_ms)).await?;
    let body = body();
    let concurrency = DeliverySettings::default().per_endpoint_concurrency;
    let n = args.deliveries;
    // Warm up both paths' connections and the receiver.
    bare_loop(&url, &body, 200, concurrency).await?;
    let rate = |t: Took| n as f64 / t.wall.as_secs_f64();
    // CPU time per delivery, in µs, of the whole process (the receiver too).
    let cpu = |t: Took| t.cpu.map(|c| c.as_secs_f64() * 1e6 / n as f64);
    println!(
        "runhook-bench deliveries: {n} webhooks of {} bytes to a local receiver, concurrency {concurrency}{}, {} rounds",
        body.len(),
        if args.signed { ", signed" } else { "" },
        args.rounds
    );
    let (mut bare, mut sender, mut ours, mut ratios) = (vec![], vec![], vec![], vec![]);
    let (mut bare_cpu, mut sender_cpu, mut ours_cpu, mut reads_cpu, mut records_cpu) =
        (vec![], vec![], vec![], vec![], vec![]);
    let per_delivery = |d: Duration| d.as_secs_f64() * 1e6 / n as f64;
    for round in 1..=args.rounds {
        let b = measured(bare_loop(&url, &body, n, concurrency)).await?;
        let s = measured(sender_loop(&url, &body, n, concurrency)).await?;
        let (o, store) = runhook_path(args, &url, &received, &body).await?;
        let (rb, rs, ro) = (rate(b), rate(s), rate(o));
        let cpus = cpu(b).zip(cpu(s)).zip(cpu(o)).map(|((cb, cs), co)| (cb, cs, co));
        let (sr, sw) = (per_delivery(store.due_reads), per_delivery(store.records));
        let cpu_note = cpus.map_or(String::new(), |(cb, cs, co)| {
            format!(
                "  CPU/delivery bare {cb:.0} µs, sender {cs:.0} µs, runhook {co:.0} µs (SQLite: read {sr:.1}, record {sw:.1})"
            )
        });
        println!(
            "  round {round}: bare {rb:>7.0}/s  sender alone {rs:>7.0}/s  runhook {ro:>7.0}/s  ratio {:.2}{cpu_note}",
            ro / rb
        );
        bare.push(rb);
        sender.push(rs);
        ours.push(ro);
        ratios.push(ro / rb);
        if let Some((cb, cs, co)) = cpus {
            bare_cpu.push(cb);
            sender_cpu.push(cs);
            ours_cpu.push(co);
        }
        reads_cpu.push(sr);
        records_cpu.push(sw);
    }
    println!("  medians:");
    println!("  bare reqwest loop (baseline)          {:>9.0} deliveries/s", median(bare));
    println!("  runhook sender alone (no outbox)      {:>9.0} deliveries/s", median(sender));
    println!("  runhook outbox -> worker -> receiver  {:>9.0} deliveries/s", median(ours));
    if !ours_cpu.is_empty() {
        // Both sides keep the machine's cores busy, so the throughput ratio
        // is close to the inverse ratio of CPU spent per delivery.
        println!(
            "  CPU per delivery, bare / sender / runhook {:>2.0} / {:.0} / {:.0} µs",
            median(bare_cpu),
            median(sender_cpu),
            median(ours_cpu)
        );
    }
    // Zero where the system does not tell a thread's CPU time.
    if records_cpu.iter().any(|c| *c > 0.0) {
        println!("  of which SQLite, read / record         {:>5.1} / {:.1} µs", median(reads_cpu), median(records_cpu));
    }
    println!("  ratio (target >= 0.70)                {:>9.2}", median(ratios));
    if let Some(server) = &args.postgres {
        let (mut one, mut three) = (vec![], vec![]);
        for _ in 0..args.rounds {
            one.push(rate(postgres_path(args, server, 1, &url, &received, &body).await?));
            three.push(rate(postgres_path(args, server, 3, &url, &received, &body).await?));
        }
        println!("  Postgres, 1 replica's worker          {:>9.0} deliveries/s", median(one));
        println!(
            "  Postgres, 3 replicas' workers         {:>9.0} deliveries/s (one endpoint: its bound is shared)",
            median(three)
        );
    }
    stop.cancel();
    Ok(())
}
