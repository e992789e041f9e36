//! `runhook migrate-store --from sqlite:DIR --to postgres://...`: moves an
//! embedded store to a Postgres database, so a team that outgrows one
//! machine keeps its history and its rules carry on where they stopped.
//!
//! The source server must be stopped (the data directory's lock is
//! taken); the target must be empty, and no replica may run on it until
//! the move is done. Everything is copied as stored: runs with their
//! places in change order, feedback, projects, attachments, uploaded
//! plugins, rules with their progress, logs and held thread runs, pending
//! and finished deliveries with their attempts and ids, datasets with
//! their examples, annotation queues with their runs, alerts with their
//! state. Secrets stay sealed
//! under the source's keys, which
//! the replicas then use (`RUNHOOK_SECRET_KEY` or `secret_key_file`).
//! Rule cycle histories are not copied.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Args;

use runhook_core::model::{ChangeSeq, Timestamp};
use runhook_server::app::{load_keys, lock_data_dir};
use runhook_server::config::{Config, DatabaseUrl, Overrides};
use runhook_store::transfer::{Export, Import};
use runhook_store::{AlertStore, DatasetQuery, DatasetStore, ExampleQuery, QueueQuery, QueueStore, RuleStore};
use runhook_store_postgres::PgStore;
use runhook_store_sqlite::SqliteStore;

/// Rows copied per page (and per target transaction).
const PAGE: usize = 1000;

/// How many of each kind of row a move copied.
#[derive(Debug, Default)]
struct Moved {
    projects: usize,
    runs: usize,
    feedback: usize,
    attachments: usize,
    plugins: usize,
    rules: usize,
    logs: usize,
    held: usize,
    deliveries: usize,
    datasets: usize,
    examples: usize,
    queues: usize,
    alerts: usize,
}

impl std::fmt::Display for Moved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} projects, {} runs, {} feedback, {} attachments, {} plugins, {} rules, {} rule-log lines, {} runs held \
             by thread rules, {} deliveries, {} datasets, {} examples, {} annotation queues, {} alerts",
            self.projects,
            self.runs,
            self.feedback,
            self.attachments,
            self.plugins,
            self.rules,
            self.logs,
            self.held,
            self.deliveries,
            self.datasets,
            self.examples,
            self.queues,
            self.alerts
        )
    }
}

#[derive(Debug, Args)]
pub(super) struct MigrateArgs {
    /// The embedded store to move: `sqlite:DIR` (its data directory).
    #[arg(long)]
    from: String,
    /// The empty Postgres database to move it to: `postgres://...`.
    #[arg(long)]
    to: String,
}

pub(super) fn run(args: &MigrateArgs) -> anyhow::Result<ExitCode> {
    let Some(dir) = args.from.strip_prefix("sqlite:").filter(|d| !d.is_empty()) else {
        bail!("--from must be sqlite:DIR (the data directory of the embedded store), got {:?}", args.from);
    };
    let to = DatabaseUrl::parse(&args.to).map_err(|e| anyhow::anyhow!("--to {e}"))?;
    let overrides = Overrides { data_dir: Some(PathBuf::from(dir)), ..Overrides::default() };
    // The source's own settings (its key file, or RUNHOOK_SECRET_KEY);
    // the target's URL is the flag, not the environment.
    let mut config = Config::load(None, |k| std::env::var(k).ok().filter(|_| k != "RUNHOOK_DATABASE_URL"), &overrides)?;
    config.database = None;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(migrate(&config, &to))?;
    Ok(ExitCode::SUCCESS)
}

async fn migrate(config: &Config, to: &DatabaseUrl) -> anyhow::Result<()> {
    anyhow::ensure!(
        config.data_dir.join("runhook.db").is_file(),
        "{} holds no runhook store (no runhook.db)",
        config.data_dir.display()
    );
    let _lock = lock_data_dir(&config.data_dir)?;
    let keys = load_keys(config)?;
    let source = SqliteStore::open(&config.data_dir, keys.clone())
        .await
        .with_context(|| format!("cannot open the store in {}", config.data_dir.display()))?;
    let target = PgStore::open(to.expose(), keys).await.context("cannot open the Postgres store")?;
    anyhow::ensure!(target.is_empty().await?, "the target database is not empty; migrate into an empty one");
    let moved = copy(&source, &target).await?;
    println!("moved {moved}");
    match &config.secret_key {
        Some(_) => println!("start the replicas with the same RUNHOOK_SECRET_KEY"),
        None => println!(
            "start the replicas with the keys of {} (RUNHOOK_SECRET_KEY, comma-separated, or secret_key_file)",
            config
                .secret_key_file
                .clone()
                .unwrap_or_else(|| config.data_dir.join(runhook_core::secrets::KEY_FILE))
                .display()
        ),
    }
    Ok(())
}

/// Copies every kind of row in the order the target imports them; how
/// many of each (projects, runs, feedback, attachments, rules, logs,
/// deliveries, plugins, datasets, examples, annotation queues).
async fn copy(
    source: &(impl Export + RuleStore + DatasetStore + QueueStore + AlertStore),
    target: &(impl Import + DatasetStore + QueueStore + AlertStore),
) -> anyhow::Result<Moved> {
    let mut counts = Moved::default();
    let sessions = source.export_sessions().await?;
    target.import_sessions(&sessions).await?;
    counts.projects = sessions.len();

    let mut after = ChangeSeq::START;
    loop {
        let runs = source.export_runs(after, PAGE).await?;
        let Some(last) = runs.last() else { break };
        after = last.seq;
        target.import_runs(&runs).await?;
        counts.runs += runs.len();
    }
    let mut after = None;
    loop {
        let feedback = source.export_feedback(after, PAGE).await?;
        let Some(last) = feedback.last() else { break };
        after = Some(last.id);
        target.import_feedback(&feedback).await?;
        counts.feedback += feedback.len();
    }
    let mut after = None;
    loop {
        let attachments = source.export_attachments(after, PAGE).await?;
        let Some(last) = attachments.last() else { break };
        after = Some((last.run_id, last.name.clone()));
        target.import_attachments(&attachments).await?;
        counts.attachments += attachments.len();
    }
    let mut after = None;
    loop {
        // Plugins are large (a Python guest is ~20 MB): a few per page.
        let plugins = source.export_plugins(after, 4).await?;
        let Some(last) = plugins.last() else { break };
        after = Some(last.record.digest.clone());
        target.import_plugins(&plugins).await?;
        counts.plugins += plugins.len();
    }
    // After every run and plugin: rules' positions are translated against
    // the runs, and the plugins they name are there.
    let rules = source.export_rules().await?;
    target.import_rules(&rules).await?;
    counts.rules = rules.len();
    let mut after = None;
    loop {
        let logs = source.export_logs(after, PAGE).await?;
        let Some(last) = logs.last() else { break };
        after = Some((last.rule_id, last.run_id));
        target.import_logs(&logs).await?;
        counts.logs += logs.len();
    }
    // A thread rule's held runs (activity never later than when held): a
    // thread waiting to go idle is acted on by the target.
    let everything = Timestamp::from_datetime(Timestamp::now().as_datetime() + chrono::Duration::days(1));
    for rule in &rules {
        let held = source.due_threads(rule.id, everything, usize::MAX).await?;
        let runs: Vec<_> = held.threads.into_iter().flat_map(|t| t.runs).collect();
        target.import_held_runs(rule.id, &runs).await?;
        counts.held += runs.len();
    }
    let mut after = None;
    loop {
        let deliveries = source.export_deliveries(after, PAGE).await?;
        let Some(last) = deliveries.last() else { break };
        after = Some(last.id);
        target.import_deliveries(&deliveries).await?;
        counts.deliveries += deliveries.len();
    }
    // Datasets and examples through the store's own calls, which keep ids
    // and times; pages by offset hold still, as nothing writes meanwhile.
    let mut offset = 0;
    loop {
        let q = DatasetQuery { limit: PAGE, offset, ..DatasetQuery::default() };
        let datasets = source.list_datasets(&q).await?;
        if datasets.is_empty() {
            break;
        }
        offset += datasets.len();
        for d in &datasets {
            target.create_dataset(d).await?;
            counts.datasets += 1;
            let mut from = 0;
            loop {
                let q = ExampleQuery { dataset: Some(d.id), limit: PAGE, offset: from, ..ExampleQuery::default() };
                let examples = source.list_examples(&q).await?;
                if examples.is_empty() {
                    break;
                }
                from += examples.len();
                target.create_examples(&examples).await?;
                counts.examples += examples.len();
            }
        }
    }
    // Annotation queues, each entry with when it was added and reviewed.
    let mut offset = 0;
    loop {
        let q = QueueQuery { limit: PAGE, offset, ..QueueQuery::default() };
        let queues = source.list_queues(&q).await?;
        if queues.is_empty() {
            break;
        }
        offset += queues.len();
        for queue in &queues {
            target.create_queue(queue).await?;
            counts.queues += 1;
            let mut from = 0;
            loop {
                let entries = source.queue_entries(queue.id, None, PAGE, from).await?;
                if entries.is_empty() {
                    break;
                }
                from += entries.len();
                for e in &entries {
                    target.add_to_queue(queue.id, &[e.run_id], e.added_at).await?;
                    if let Some(at) = e.last_reviewed_time {
                        target.mark_reviewed(queue.id, e.run_id, e.done, at).await?;
                    }
                }
            }
        }
    }
    // Alerts through the store's own calls, with the state their
    // evaluations left (an open incident stays open, under its key).
    for alert in source.list_alerts().await? {
        target.create_alert(alert.id, &alert.spec).await?;
        target.commit_evaluation(alert.id, 0, &alert.state, &[]).await?;
        counts.alerts += 1;
    }
    Ok(counts)
}
