//! The SQLite outbox's own tests: upgrades from earlier migrations, and
//! the delivery worker's connections of their own. What every backend
//! must do is in the conformance suite (`runhook_store::conformance`).

use std::borrow::Cow;

use super::*;
use runhook_core::model::{RuleId, WebhookTarget};
use runhook_core::secrets::Keyring;
use runhook_store::conformance::{delivered, record};
use runhook_store::{DueQuery, OutboxRow, OutboxStore, RuleStore, RunStore};

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
    let target = WebhookTarget::new("https://hooks.example.com/x");
    OutboxRow::queued(rule, &target, "{}".into(), vec![])
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
    record(&store, &[runhook_store::conformance::delivered(row, 2)]).await.unwrap();
    let now = store.get_delivery(pending).await.unwrap().unwrap();
    assert_eq!((now.status.as_str(), now.attempts), ("delivered", 2));
    assert_eq!(now.history.iter().map(|a| a.attempt).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(now.history[1].class, "success");
    let due =
        store.due_deliveries(&DueQuery { now: Timestamp::now(), limit: 10, busy: vec![], after: None }).await.unwrap();
    assert!(due.rows.is_empty());
    assert_eq!(store.outbox_stats().await.unwrap().0, 0);
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
        let (store, row) = (store.clone(), row.clone());
        async move { record(&store, &[delivered(&row, 1)]).await }
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

/// Nothing secret is in the database file in clear: not a rule's URL
/// token, header value or signing secret, not a queued delivery's.
#[tokio::test]
async fn secrets_are_sealed_in_the_file() {
    use runhook_core::model::{RuleSpec, SessionId};
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path(), Keyring::generate()).await.unwrap();
    let hook = WebhookTarget {
        headers: Some([("authorization".to_string(), "Bearer k3y".to_string())].into_iter().collect()),
        ..WebhookTarget::new("https://hooks.example.com/in?token=t0k3n")
    };
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let spec =
        RuleSpec { signing_secret: Some(secret.into()), ..RuleSpec::new("s", SessionId::new_v4(), vec![hook.clone()]) };
    let rule = store.create_rule(RuleId::new_v4(), &spec).await.unwrap();
    queue_rows(&store, &[OutboxRow::queued(rule.id, &hook, "{}".into(), vec![secret.into()])]).await;
    let stored: Vec<String> =
        sqlx::query_scalar("SELECT spec FROM rules UNION ALL SELECT url || headers || signing_secret FROM outbox")
            .fetch_all(&store.read)
            .await
            .unwrap();
    assert_eq!(stored.len(), 2);
    for text in &stored {
        for clear in ["t0k3n", "k3y", "whsec_"] {
            assert!(!text.contains(clear), "{clear} stored in clear: {text}");
        }
    }
}
