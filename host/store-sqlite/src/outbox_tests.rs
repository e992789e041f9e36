//! The SQLite outbox's own tests: upgrades from earlier migrations, and
//! the delivery worker's connections of their own. What every backend
//! must do is in the conformance suite (`runhook_store::conformance`).

use std::borrow::Cow;

use super::*;
use runhook_core::model::{RuleId, WebhookTarget};
use runhook_store::{OutboxStore, RuleStore, RunStore};

/// A database at migration 0003 (state inside `outbox`), as the
/// previous release left it, with a pending and a delivered delivery.
async fn release_0003_database(dir: &std::path::Path, keys: &Keyring) -> (DeliveryId, DeliveryId) {
    let all = sqlx::migrate!("./migrations");
    let upto_3 = sqlx::migrate::Migrator {
        migrations: Cow::Owned(all.migrations.iter().filter(|m| m.version <= 3).cloned().collect()),
        ..sqlx::migrate!("./migrations")
    };
    let options = sqlx::sqlite::SqliteConnectOptions::new().filename(dir.join("runhook.db")).create_if_missing(true);
    let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
    upto_3.run(&pool).await.unwrap();
    let (pending, delivered, rule) = (DeliveryId::new_v7(), DeliveryId::new_v7(), RuleId::new_v4());
    let url = "http://127.0.0.1:9/hook?token=old";
    for (id, status, attempts) in [(pending, "pending", 1), (delivered, "delivered", 1)] {
        sqlx::query(
            "INSERT INTO outbox (id, rule_id, url, headers, body, run_ids, signing_secret, created_at, status, \
             attempts, next_attempt_at, last_error, finished_at, endpoint) \
             VALUES (?, ?, ?, ?, '{}', '[]', NULL, '2026-11-01T00:00:00.000000', ?, ?, '2026-11-01T00:00:01.000000', \
             'HTTP 500', NULL, ?)",
        )
        .bind(id.to_string())
        .bind(rule.to_string())
        .bind(keys.seal(url))
        .bind(format!(r#"{{"x-team":"{}"}}"#, keys.seal("secret-header")))
        .bind(status)
        .bind(attempts)
        .bind(endpoint_key(url))
        .execute(&pool)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO delivery_attempts VALUES (?, 1, '2026-11-01T00:00:00.000000', 3, 'server_error', 500, 'HTTP 500')",
        )
        .bind(id.to_string())
        .execute(&pool)
        .await
        .unwrap();
    }
    pool.close().await;
    (pending, delivered)
}

/// A delivery of `rule` as a cycle queues it.
fn fresh_row(rule: RuleId) -> OutboxRow {
    let target = WebhookTarget { url: "https://hooks.example.com/x".into(), headers: None };
    OutboxRow::queued(rule, &target, "{}".into(), vec![])
}

fn delivered_record(id: DeliveryId, attempts: u32) -> DeliveryRecord {
    DeliveryRecord {
        id,
        rule_id: RuleId::new_v4(),
        run_ids: vec![],
        attempts,
        attempt: AttemptRecord {
            attempt: attempts,
            started_at: Timestamp::now(),
            duration_ms: 4,
            class: "success".into(),
            status_code: Some(200),
            error: None,
        },
        status: DeliveryStatus::Delivered,
    }
}

/// `id`'s attempt `attempts`, after which the policy gave up.
fn failed_record(id: DeliveryId, attempts: u32, error: &str) -> DeliveryRecord {
    DeliveryRecord { status: DeliveryStatus::Failed(error.into()), ..delivered_record(id, attempts) }
}

/// Queues `rows` in one transaction, as a cycle does.
async fn queue_rows(store: &SqliteStore, rows: &[OutboxRow]) {
    let mut tx = store.write.begin().await.unwrap();
    for row in rows {
        insert_outbox(&mut tx, store, row).await.unwrap();
    }
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn deliveries_of_the_previous_release_survive_the_move_of_their_state() {
    let dir = tempfile::tempdir().unwrap();
    let keys = Keyring::generate();
    let (pending, delivered) = release_0003_database(dir.path(), &keys).await;
    let store = SqliteStore::open(dir.path(), keys).await.unwrap();

    let listed = store.list_deliveries(&DeliveryQuery { limit: 10, ..Default::default() }).await.unwrap();
    assert_eq!(listed.len(), 2);
    let old = store.get_delivery(delivered).await.unwrap().unwrap();
    assert_eq!((old.status.as_str(), old.attempts, old.history.len()), ("delivered", 1, 1));
    assert_eq!(old.url, "http://127.0.0.1:9/hook?token=old");

    let due =
        store.due_deliveries(&DueQuery { now: Timestamp::now(), limit: 10, busy: vec![], after: None }).await.unwrap();
    assert_eq!(due.rows.len(), 1);
    let (row, endpoint) = &due.rows[0];
    assert_eq!((row.id, row.attempts), (pending, 1));
    assert_eq!(row.headers.get("x-team").map(String::as_str), Some("secret-header"));
    assert_eq!(*endpoint, endpoint_key(&row.url));

    // The next attempt continues the history; the row leaves the due set.
    store.record_deliveries(&[delivered_record(pending, 2)]).await.unwrap();
    let now = store.get_delivery(pending).await.unwrap().unwrap();
    assert_eq!((now.status.as_str(), now.attempts), ("delivered", 2));
    assert_eq!(now.history.iter().map(|a| a.attempt).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(now.history[1].class, "success");
    let due =
        store.due_deliveries(&DueQuery { now: Timestamp::now(), limit: 10, busy: vec![], after: None }).await.unwrap();
    assert!(due.rows.is_empty());
    assert_eq!(store.outbox_stats().await.unwrap().0, 0);
}

#[tokio::test]
async fn a_mixed_group_is_recorded_whole() {
    let dir = tempfile::tempdir().unwrap();
    let keys = Keyring::generate();
    let store = SqliteStore::open(dir.path(), keys).await.unwrap();
    let rule = RuleId::new_v4();
    let n = 131;
    let rows: Vec<OutboxRow> = (0..n).map(|_| fresh_row(rule)).collect();
    queue_rows(&store, &rows).await;
    let ids: Vec<DeliveryId> = rows.iter().map(|r| r.id).collect();
    // Half delivered, half to be retried.
    let records: Vec<DeliveryRecord> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let mut r = delivered_record(*id, 1);
            if i % 2 == 1 {
                r.status = DeliveryStatus::Retry { at: Timestamp::now(), error: "HTTP 503".into() };
            }
            r
        })
        .collect();
    store.record_deliveries(&records).await.unwrap();
    let all = store.list_deliveries(&DeliveryQuery { limit: 1000, ..Default::default() }).await.unwrap();
    assert_eq!(all.len(), n);
    for d in &all {
        let i = ids.iter().position(|id| *id == d.id).unwrap();
        let expected = if i % 2 == 1 { "pending" } else { "delivered" };
        assert_eq!((d.status.as_str(), d.attempts, d.history.len()), (expected, 1, 1), "delivery {i}");
        assert_eq!(d.last_error.is_some(), i % 2 == 1);
    }
    assert_eq!(store.outbox_stats().await.unwrap().0, i64::try_from(n / 2).unwrap());
}

#[tokio::test]
async fn pruning_removes_only_deliveries_finished_before_the_cutoff() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path(), Keyring::generate()).await.unwrap();
    let days_ago = |d: i64| Timestamp::from_datetime(chrono::Utc::now() - chrono::Duration::days(d));
    let rule = RuleId::new_v4();
    // Queued 40 days ago: delivered, failed, pending, redelivered lately;
    // and one queued today, delivered.
    let rows: Vec<OutboxRow> =
        [40, 40, 40, 40, 0].into_iter().map(|d| OutboxRow { created_at: days_ago(d), ..fresh_row(rule) }).collect();
    queue_rows(&store, &rows).await;
    let [delivered, failed, pending, redelivered, recent] = [0, 1, 2, 3, 4].map(|i| rows[i].id);
    let records =
        [delivered_record(delivered, 1), failed_record(failed, 3, "HTTP 404"), delivered_record(redelivered, 1)];
    store.record_deliveries(&records).await.unwrap();
    store.record_deliveries(&[delivered_record(recent, 1)]).await.unwrap();
    for id in [delivered, failed] {
        sqlx::query("UPDATE delivery_state SET finished_at = ? WHERE id = ?")
            .bind(days_ago(39).to_naive_string())
            .bind(id.to_string())
            .execute(&store.write)
            .await
            .unwrap();
    }

    let cutoff = days_ago(30);
    assert_eq!(store.prune_deliveries(cutoff, 1).await.unwrap(), 1);
    assert_eq!(store.prune_deliveries(cutoff, 10).await.unwrap(), 1);
    assert_eq!(store.prune_deliveries(cutoff, 10).await.unwrap(), 0);
    for id in [delivered, failed] {
        assert!(store.get_delivery(id).await.unwrap().is_none());
    }
    for id in [pending, redelivered, recent] {
        assert!(store.get_delivery(id).await.unwrap().is_some());
    }
    // Payloads and attempts went with them.
    let count = |sql: &'static str| sqlx::query_scalar::<_, i64>(sql).fetch_one(&store.read);
    assert_eq!(count("SELECT COUNT(*) FROM outbox").await.unwrap(), 3);
    assert_eq!(count("SELECT COUNT(*) FROM delivery_attempts").await.unwrap(), 2);
}

#[tokio::test]
async fn a_bulk_redelivery_queues_the_finished_deliveries_it_selects() {
    use futures_util::FutureExt;

    use runhook_core::model::{RuleSpec, SessionId};
    use runhook_store::{Finished, Redelivery};
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path(), Keyring::generate()).await.unwrap();
    let mut rules = Vec::new();
    for name in ["a", "b", "deleted"] {
        let rule = store.create_rule(RuleId::new_v4(), &RuleSpec::new(name, SessionId::new_v4(), vec![])).await;
        rules.push(rule.unwrap().id);
    }
    let [a, b, deleted] = [rules[0], rules[1], rules[2]];
    let ago = |mins: i64| Timestamp::from_datetime(chrono::Utc::now() - chrono::Duration::minutes(mins));
    // Rule a: failed 3 h ago, failed, delivered, pending; rule b: failed;
    // the deleted rule: failed. All but the first queued 30 min ago.
    let rows: Vec<OutboxRow> = [(a, 180), (a, 30), (a, 30), (a, 30), (b, 30), (deleted, 30)]
        .into_iter()
        .map(|(rule, mins)| OutboxRow { created_at: ago(mins), ..fresh_row(rule) })
        .collect();
    queue_rows(&store, &rows).await;
    let ids: Vec<DeliveryId> = rows.iter().map(|r| r.id).collect();
    let failed = |id| failed_record(id, 3, "HTTP 500");
    let records = [failed(ids[0]), failed(ids[1]), delivered_record(ids[2], 1), failed(ids[4]), failed(ids[5])];
    store.record_deliveries(&records).await.unwrap();
    assert!(store.delete_rule(deleted).await.unwrap());
    while store.bell.rung().now_or_never().is_some() {}

    let hour = Redelivery { rule: None, status: Finished::Failed, since: ago(60), until: Timestamp::now() };
    assert_eq!(store.redeliver_matching(&hour).await.unwrap(), 2);
    assert!(store.bell.rung().now_or_never().is_some(), "the worker was not told");
    let status = |id| {
        let store = store.clone();
        async move { store.get_delivery(id).await.unwrap().unwrap() }
    };
    for (i, expected) in ["failed", "pending", "delivered", "pending", "pending", "failed"].into_iter().enumerate() {
        let d = status(ids[i]).await;
        assert_eq!(d.status, expected, "delivery {i}");
        if i == 1 {
            // Queued again from the start, its history kept.
            assert_eq!((d.attempts, d.history.len(), d.finished_at), (0, 1, None));
        }
    }
    // One rule's delivered ones; nothing left of a window already redelivered.
    let delivered = Redelivery { rule: Some(a), status: Finished::Delivered, ..hour.clone() };
    assert_eq!(store.redeliver_matching(&delivered).await.unwrap(), 1);
    assert_eq!(store.redeliver_matching(&hour).await.unwrap(), 0);
    // A deleted rule's delivery is not sent again, one by one either.
    let refused = store.redeliver(ids[5]).await.unwrap_err().to_string();
    assert!(refused.contains("was deleted"), "{refused}");
    assert_eq!(status(ids[5]).await.status, "failed");
}

#[tokio::test]
async fn a_redelivery_is_signed_with_the_rules_current_secrets() {
    use runhook_core::model::{RuleSpec, SessionId};
    use runhook_store::{Finished, Redelivery};
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path(), Keyring::generate()).await.unwrap();
    let (a, b, c) =
        ("whsec_aaaaaaaaaaaaaaaaaaaaaaaa", "whsec_bbbbbbbbbbbbbbbbbbbbbbbb", "whsec_cccccccccccccccccccccccc");
    let spec = |secret: &str| RuleSpec {
        signing_secret: Some(secret.into()),
        ..RuleSpec::new("signed", SessionId::new_v4(), vec![])
    };
    let rule = store.create_rule(RuleId::new_v4(), &spec(a)).await.unwrap();
    let rows: Vec<OutboxRow> =
        (0..2).map(|_| OutboxRow { signing_secrets: vec![a.into()], ..fresh_row(rule.id) }).collect();
    queue_rows(&store, &rows).await;
    let failed = |id| failed_record(id, 3, "HTTP 500");
    store.record_deliveries(&[failed(rows[0].id), failed(rows[1].id)]).await.unwrap();
    let due_secrets = || async {
        let q = DueQuery { now: Timestamp::now(), limit: 10, busy: vec![], after: None };
        let due = store.due_deliveries(&q).await.unwrap();
        due.rows.into_iter().map(|(r, _)| (r.id, r.signing_secrets)).collect::<Vec<_>>()
    };

    // Rotated to b, a's overlap over: the redelivery carries b alone.
    store.update_rule(rule.id, &spec(b)).await.unwrap();
    assert!(store.redeliver(rows[0].id).await.unwrap());
    assert_eq!(due_secrets().await, [(rows[0].id, vec![b.to_string()])]);

    // Rotated to c with b still in its overlap: both sign.
    let mut rotated = spec(c);
    rotated.rotate_from(&spec(b), Timestamp::now(), chrono::Duration::hours(1));
    store.update_rule(rule.id, &rotated).await.unwrap();
    let which = Redelivery {
        rule: Some(rule.id),
        status: Finished::Failed,
        since: rows[0].created_at,
        until: Timestamp::now(),
    };
    assert_eq!(store.redeliver_matching(&which).await.unwrap(), 1);
    let due = due_secrets().await;
    assert!(due.contains(&(rows[1].id, vec![c.to_string(), b.to_string()])), "{due:?}");
    // Nothing of it is stored in clear.
    let stored: Vec<String> =
        sqlx::query_scalar("SELECT signing_secret FROM outbox").fetch_all(&store.read).await.unwrap();
    assert!(stored.iter().all(|s| s.starts_with("enc:") && !s.contains("whsec_")), "{stored:?}");
}

#[tokio::test]
async fn a_redelivery_goes_to_its_webhook_as_the_rule_has_it_now() {
    use runhook_core::model::{RuleSpec, SessionId};
    use runhook_store::{Finished, Redelivery};
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path(), Keyring::generate()).await.unwrap();
    let hook = |url: &str, team: &str| WebhookTarget {
        url: url.into(),
        headers: Some([("x-team".to_string(), team.to_string())].into_iter().collect()),
    };
    let (old, fixed, x, y, gone) = (
        hook("https://old.example/hook?t=1", "a"),
        hook("https://fixed.example/hook?t=2", "b"),
        hook("https://x.example/hook", "1"),
        hook("https://y.example/hook", "1"),
        hook("https://gone.example/hook", "1"),
    );
    let spec = |webhooks: Vec<WebhookTarget>| RuleSpec::new("r", SessionId::new_v4(), webhooks);
    let single = store.create_rule(RuleId::new_v4(), &spec(vec![old.clone()])).await.unwrap().id;
    let double = store.create_rule(RuleId::new_v4(), &spec(vec![x.clone(), y.clone()])).await.unwrap().id;
    let rows = [(single, &old), (double, &x), (double, &gone)]
        .map(|(rule, target)| OutboxRow::queued(rule, target, "{}".into(), vec![]));
    queue_rows(&store, &rows).await;
    let failed = |id| failed_record(id, 1, "HTTP 404");
    store.record_deliveries(&rows.each_ref().map(|r| failed(r.id))).await.unwrap();

    // The single webhook's URL is corrected; x's header changes.
    store.update_rule(single, &spec(vec![fixed.clone()])).await.unwrap();
    store.update_rule(double, &spec(vec![hook(&x.url, "2"), y])).await.unwrap();
    let all = Redelivery { rule: None, status: Finished::Failed, since: rows[0].created_at, until: Timestamp::now() };
    assert_eq!(store.redeliver_matching(&all).await.unwrap(), 3);
    let q = DueQuery { now: Timestamp::now(), limit: 10, busy: vec![], after: None };
    let due = store.due_deliveries(&q).await.unwrap().rows;
    let sent =
        |id| due.iter().find(|(r, _)| r.id == id).map(|(r, e)| (r.url.clone(), r.headers["x-team"].clone(), e.clone()));
    assert_eq!(sent(rows[0].id), Some((fixed.url.clone(), "b".into(), endpoint_key(&fixed.url))));
    assert_eq!(sent(rows[1].id), Some((x.url.clone(), "2".into(), endpoint_key(&x.url))));
    // A webhook the rule no longer has: where it was sent.
    assert_eq!(sent(rows[2].id), Some((gone.url.clone(), "1".into(), endpoint_key(&gone.url))));
    assert_eq!(store.get_delivery(rows[0].id).await.unwrap().unwrap().url, fixed.url);
}

/// The recorder writes on a connection of its own; it must wait for a
/// sqlx write transaction in progress, or that transaction, having read
/// before the record committed, could no longer write (SQLITE_BUSY).
#[tokio::test]
async fn recording_waits_for_a_write_transaction_in_progress() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path(), Keyring::generate()).await.unwrap();
    let row = fresh_row(RuleId::new_v4());
    queue_rows(&store, std::slice::from_ref(&row)).await;

    // A write transaction that reads first, as a rule cycle does.
    let mut tx = store.write.begin().await.unwrap();
    let pending: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM delivery_state WHERE status = 'pending'")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    let recording = tokio::spawn({
        let store = store.clone();
        async move { store.record_deliveries(&[delivered_record(row.id, 1)]).await }
    });
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert!(!recording.is_finished(), "the record did not wait for the transaction");
    sqlx::query("UPDATE meta SET value = ? WHERE key = 'tenant_id'")
        .bind(store.tenant_id().to_string())
        .execute(&mut *tx)
        .await
        .expect("the transaction can still write");
    tx.commit().await.unwrap();
    recording.await.unwrap().unwrap();
    let d = store.get_delivery(row.id).await.unwrap().unwrap();
    assert_eq!((pending, d.status.as_str()), (1, "delivered"));
}
