//! [`OutboxStore`](crate::OutboxStore): due deliveries, recorded attempts,
//! redelivery (one, bulk, to the webhook as it is now, with today's
//! secrets), pruning.

use runhook_core::model::{DeliveryId, RuleSpec, SessionId, Timestamp, WebhookTarget};

use super::{Harness, ago, delivered, failed, fresh, fresh_row, hook, queue, rang, rule};
use crate::{
    ClaimOutcome, ClaimTerms, ClaimToken, DeliveryQuery, DeliveryStatus, DueQuery, Finished, OutboxRow, Redelivery,
    StoreError, endpoint_key,
};

fn due_now(limit: usize) -> DueQuery {
    DueQuery { now: Timestamp::now(), limit, busy: vec![], after: None }
}

fn all() -> DeliveryQuery {
    DeliveryQuery { limit: 1000, ..DeliveryQuery::default() }
}

/// A queued delivery is due with its target in clear; each attempt is
/// kept in its history; a retry is due at its time; the last attempt
/// finishes it and writes its outcome into the carried runs' log lines.
pub async fn attempts_are_recorded_until_a_delivery_finishes(h: &dyn Harness) {
    let store = fresh(h).await;
    let r = rule(store.as_ref(), SessionId::new_v4(), vec![]).await;
    let target = WebhookTarget {
        headers: Some([("x-team".to_string(), "secret-header".to_string())].into_iter().collect()),
        ..WebhookTarget::new("https://hooks.example.com/a?token=t0k3n")
    };
    let row = OutboxRow::queued(
        r.id,
        &target,
        r#"{"runs":[]}"#.into(),
        vec!["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into()],
    );
    queue(store.as_ref(), r.id, std::slice::from_ref(&row)).await;
    assert_eq!(store.outbox_stats().await.unwrap().0, 1);

    let page = store.due_deliveries(&due_now(10)).await.unwrap();
    assert_eq!(page.rows.len(), 1);
    let (due, endpoint) = &page.rows[0];
    assert_eq!((due.id, &due.url, &due.headers, &due.body), (row.id, &row.url, &row.headers, &row.body));
    assert_eq!((&due.signing_secrets, due.attempts), (&row.signing_secrets, 0));
    assert_eq!(*endpoint, endpoint_key(&row.url));

    let later = Timestamp::from_datetime(chrono::Utc::now() + chrono::Duration::hours(1));
    let retry = crate::DeliveryRecord {
        status: DeliveryStatus::Retry { at: later, error: "HTTP 503".into() },
        ..failed(&row, 1, "HTTP 503")
    };
    super::record(store.as_ref(), &[retry]).await.unwrap();
    assert!(store.due_deliveries(&due_now(10)).await.unwrap().rows.is_empty(), "a retry is not due before its time");
    let at_retry =
        DueQuery { now: Timestamp::from_datetime(chrono::Utc::now() + chrono::Duration::hours(2)), ..due_now(10) };
    let page = store.due_deliveries(&at_retry).await.unwrap();
    assert_eq!(page.rows.iter().map(|(r, _)| (r.id, r.attempts)).collect::<Vec<_>>(), [(row.id, 1)]);
    let d = store.get_delivery(row.id).await.unwrap().unwrap();
    assert_eq!(
        (d.status.as_str(), d.attempts, d.next_attempt_at, d.last_error.as_deref()),
        ("pending", 1, Some(later), Some("HTTP 503"))
    );

    super::record(store.as_ref(), &[delivered(&row, 2)]).await.unwrap();
    let d = store.get_delivery(row.id).await.unwrap().unwrap();
    assert_eq!((d.status.as_str(), d.attempts, d.next_attempt_at), ("delivered", 2, None));
    assert!(d.finished_at.is_some());
    assert_eq!(
        d.history.iter().map(|a| (a.attempt, a.class.as_str())).collect::<Vec<_>>(),
        [(1, "server_error"), (2, "success")]
    );
    assert!(store.due_deliveries(&at_retry).await.unwrap().rows.is_empty());
    assert_eq!(store.outbox_stats().await.unwrap(), (0, None));
}

/// A group of records commits whole, each delivery in its own state.
pub async fn a_mixed_group_is_recorded_whole(h: &dyn Harness) {
    let store = fresh(h).await;
    let r = rule(store.as_ref(), SessionId::new_v4(), vec![]).await;
    let n = 131;
    let rows: Vec<OutboxRow> = (0..n).map(|_| fresh_row(r.id)).collect();
    queue(store.as_ref(), r.id, &rows).await;
    let records: Vec<_> = rows
        .iter()
        .enumerate()
        .map(|(i, row)| {
            let mut rec = delivered(row, 1);
            if i % 2 == 1 {
                rec.status = DeliveryStatus::Retry { at: Timestamp::now(), error: "HTTP 503".into() };
            }
            rec
        })
        .collect();
    super::record(store.as_ref(), &records).await.unwrap();
    let listed = store.list_deliveries(&all()).await.unwrap();
    assert_eq!(listed.len(), n);
    for d in &listed {
        let i = rows.iter().position(|row| row.id == d.id).unwrap();
        let expected = if i % 2 == 1 { "pending" } else { "delivered" };
        assert_eq!((d.status.as_str(), d.attempts, d.history.len()), (expected, 1, 1), "delivery {i}");
        assert_eq!(d.last_error.is_some(), i % 2 == 1);
    }
    assert_eq!(store.outbox_stats().await.unwrap().0, i64::try_from(n / 2).unwrap());
    assert_eq!(store.count_deliveries(&all()).await.unwrap(), n as u64);
    let pending = DeliveryQuery { status: Some("pending".into()), limit: 1, ..all() };
    assert_eq!(store.count_deliveries(&pending).await.unwrap(), (n / 2) as u64, "the page size does not count");
    let later = DeliveryQuery { since: Some(Timestamp::now()), ..all() };
    assert_eq!(store.count_deliveries(&later).await.unwrap(), 0);
}

/// Due pages come in due order and continue after their cursor; rows for
/// busy endpoints are left out.
pub async fn due_pages_continue_after_their_cursor_and_skip_busy_endpoints(h: &dyn Harness) {
    let store = fresh(h).await;
    let r = rule(store.as_ref(), SessionId::new_v4(), vec![]).await;
    let (a, b) = (hook("https://a.example/hook"), hook("https://b.example/hook"));
    let rows: Vec<OutboxRow> =
        (0..5).map(|i| OutboxRow::queued(r.id, if i < 3 { &a } else { &b }, "{}".into(), vec![])).collect();
    for row in &rows {
        // One commit each, so each is due a little after the one before.
        queue(store.as_ref(), r.id, std::slice::from_ref(row)).await;
    }
    let first = store.due_deliveries(&due_now(2)).await.unwrap();
    let rest = store.due_deliveries(&DueQuery { after: first.end, ..due_now(10) }).await.unwrap();
    let order: Vec<DeliveryId> = first.rows.iter().chain(&rest.rows).map(|(r, _)| r.id).collect();
    assert_eq!(order, rows.iter().map(|r| r.id).collect::<Vec<_>>());
    let not_a = store.due_deliveries(&DueQuery { busy: vec![endpoint_key(&a.url)], ..due_now(10) }).await.unwrap();
    assert_eq!(not_a.rows.iter().map(|(r, _)| r.id).collect::<Vec<_>>(), [rows[3].id, rows[4].id]);
}

/// A finished delivery goes back in the queue with its id and history; a
/// pending one, or one of a deleted rule, is refused; an unknown one is not found.
pub async fn a_redelivery_keeps_the_id_and_the_history(h: &dyn Harness) {
    let store = fresh(h).await;
    let r = rule(store.as_ref(), SessionId::new_v4(), vec![hook("https://hooks.example.com/x?token=t0k3n")]).await;
    let rows = [fresh_row(r.id), fresh_row(r.id)];
    queue(store.as_ref(), r.id, &rows).await;
    super::record(store.as_ref(), &[failed(&rows[0], 3, "HTTP 500")]).await.unwrap();
    rang(store.as_ref());

    assert!(store.redeliver(rows[0].id).await.unwrap());
    assert!(rang(store.as_ref()), "the worker was not told");
    let d = store.get_delivery(rows[0].id).await.unwrap().unwrap();
    assert_eq!((d.status.as_str(), d.attempts, d.history.len(), d.finished_at), ("pending", 0, 1, None));
    let due = store.due_deliveries(&due_now(10)).await.unwrap();
    assert!(due.rows.iter().any(|(row, _)| row.id == rows[0].id && row.attempts == 0));

    let pending = store.redeliver(rows[1].id).await;
    assert!(matches!(pending, Err(StoreError::Conflict(_))), "{pending:?}");
    assert!(!store.redeliver(DeliveryId::new_v7()).await.unwrap());

    super::record(store.as_ref(), &[delivered(&rows[0], 1)]).await.unwrap();
    store.delete_rule(r.id).await.unwrap();
    let refused = store.redeliver(rows[0].id).await.unwrap_err().to_string();
    assert!(refused.contains("was deleted"), "{refused}");
    assert_eq!(store.get_delivery(rows[0].id).await.unwrap().unwrap().status, "delivered");
}

/// A delivery's history is bounded: once it holds
/// `MAX_ATTEMPTS_PER_DELIVERY` attempts, it is redelivered no more, singly
/// or in bulk.
pub async fn redeliveries_stop_at_the_attempt_cap(h: &dyn Harness) {
    let store = fresh(h).await;
    let r = rule(store.as_ref(), SessionId::new_v4(), vec![hook("https://hooks.example.com/x")]).await;
    let row = fresh_row(r.id);
    queue(store.as_ref(), r.id, std::slice::from_ref(&row)).await;
    for _ in 1..crate::outbox::MAX_ATTEMPTS_PER_DELIVERY {
        super::record(store.as_ref(), &[failed(&row, 1, "HTTP 500")]).await.unwrap();
        assert!(store.redeliver(row.id).await.unwrap());
    }
    super::record(store.as_ref(), &[failed(&row, 1, "HTTP 500")]).await.unwrap();
    let d = store.get_delivery(row.id).await.unwrap().unwrap();
    assert_eq!((d.status.as_str(), d.history.len()), ("failed", crate::outbox::MAX_ATTEMPTS_PER_DELIVERY));
    let refused = store.redeliver(row.id).await.unwrap_err().to_string();
    assert!(refused.contains("it is not redelivered again"), "{refused}");
    let which = crate::Redelivery { rule: None, status: crate::Finished::Failed, since: ago(60), until: ago(-60) };
    assert_eq!(store.redeliver_matching(&which).await.unwrap(), 0);
}

/// A bulk redelivery queues again every finished delivery of the status
/// and window it selects, of one rule or all, never a deleted rule's.
pub async fn a_bulk_redelivery_queues_the_finished_deliveries_it_selects(h: &dyn Harness) {
    let store = fresh(h).await;
    let project = SessionId::new_v4();
    let (a, b, deleted) = (
        rule(store.as_ref(), project, vec![]).await,
        rule(store.as_ref(), project, vec![]).await,
        rule(store.as_ref(), project, vec![]).await,
    );
    // Rule a: failed 3 h ago, failed, delivered, pending; rule b: failed;
    // the deleted rule: failed. All but the first queued 30 min ago.
    let rows: Vec<OutboxRow> = [(a.id, 180), (a.id, 30), (a.id, 30), (a.id, 30), (b.id, 30), (deleted.id, 30)]
        .into_iter()
        .map(|(rule, mins)| OutboxRow { created_at: ago(mins), ..fresh_row(rule) })
        .collect();
    for rule in [a.id, b.id, deleted.id] {
        let of_rule: Vec<OutboxRow> = rows.iter().filter(|r| r.rule_id == rule).cloned().collect();
        queue(store.as_ref(), rule, &of_rule).await;
    }
    let records = [
        failed(&rows[0], 3, "HTTP 500"),
        failed(&rows[1], 3, "HTTP 500"),
        delivered(&rows[2], 1),
        failed(&rows[4], 3, "HTTP 500"),
        failed(&rows[5], 3, "HTTP 500"),
    ];
    super::record(store.as_ref(), &records).await.unwrap();
    assert!(store.delete_rule(deleted.id).await.unwrap());
    rang(store.as_ref());

    let hour = Redelivery { rule: None, status: Finished::Failed, since: ago(60), until: Timestamp::now() };
    assert_eq!(store.redeliver_matching(&hour).await.unwrap(), 2);
    assert!(rang(store.as_ref()), "the worker was not told");
    for (i, expected) in ["failed", "pending", "delivered", "pending", "pending", "failed"].into_iter().enumerate() {
        let d = store.get_delivery(rows[i].id).await.unwrap().unwrap();
        assert_eq!(d.status, expected, "delivery {i}");
        if i == 1 {
            assert_eq!((d.attempts, d.history.len(), d.finished_at), (0, 1, None), "queued afresh, history kept");
        }
    }
    let delivered_of_a = Redelivery { rule: Some(a.id), status: Finished::Delivered, ..hour.clone() };
    assert_eq!(store.redeliver_matching(&delivered_of_a).await.unwrap(), 1);
    assert_eq!(store.redeliver_matching(&hour).await.unwrap(), 0);
}

/// A redelivery goes to its webhook as the rule has it now (the rule's
/// only one, or the one with the URL it was sent to); otherwise where it
/// was sent.
pub async fn a_redelivery_goes_to_its_webhook_as_the_rule_has_it_now(h: &dyn Harness) {
    let store = fresh(h).await;
    let team = |url: &str, team: &str| WebhookTarget {
        headers: Some([("x-team".to_string(), team.to_string())].into_iter().collect()),
        ..WebhookTarget::new(url)
    };
    let (old, fixed) = (team("https://old.example/hook?t=1", "a"), team("https://fixed.example/hook?t=2", "b"));
    let (x, y, gone) = (
        team("https://x.example/hook", "1"),
        team("https://y.example/hook", "1"),
        team("https://gone.example/hook", "1"),
    );
    let project = SessionId::new_v4();
    let spec = |webhooks: Vec<WebhookTarget>| RuleSpec::new("r", project, webhooks);
    let single = rule(store.as_ref(), project, vec![old.clone()]).await.id;
    let double = rule(store.as_ref(), project, vec![x.clone(), y.clone()]).await.id;
    let rows = [(single, &old), (double, &x), (double, &gone)]
        .map(|(rule, target)| OutboxRow::queued(rule, target, "{}".into(), vec![]));
    queue(store.as_ref(), single, &rows[..1]).await;
    queue(store.as_ref(), double, &rows[1..]).await;
    super::record(store.as_ref(), &rows.each_ref().map(|r| failed(r, 1, "HTTP 404"))).await.unwrap();

    store.update_rule(single, &spec(vec![fixed.clone()])).await.unwrap();
    store.update_rule(double, &spec(vec![team(&x.url, "2"), y])).await.unwrap();
    let every = Redelivery { rule: None, status: Finished::Failed, since: ago(5), until: Timestamp::now() };
    assert_eq!(store.redeliver_matching(&every).await.unwrap(), 3);
    let due = store.due_deliveries(&due_now(10)).await.unwrap().rows;
    let sent =
        |id| due.iter().find(|(r, _)| r.id == id).map(|(r, e)| (r.url.clone(), r.headers["x-team"].clone(), e.clone()));
    assert_eq!(sent(rows[0].id), Some((fixed.url.clone(), "b".into(), endpoint_key(&fixed.url))));
    assert_eq!(sent(rows[1].id), Some((x.url.clone(), "2".into(), endpoint_key(&x.url))));
    assert_eq!(sent(rows[2].id), Some((gone.url.clone(), "1".into(), endpoint_key(&gone.url))));
    assert_eq!(store.get_delivery(rows[0].id).await.unwrap().unwrap().url, fixed.url);
}

/// A redelivery is signed with the rule's secrets of now: the new one
/// alone once the old one's overlap is over, both during it.
pub async fn a_redelivery_is_signed_with_the_rules_current_secrets(h: &dyn Harness) {
    let store = fresh(h).await;
    let (a, b, c) =
        ("whsec_aaaaaaaaaaaaaaaaaaaaaaaa", "whsec_bbbbbbbbbbbbbbbbbbbbbbbb", "whsec_cccccccccccccccccccccccc");
    let project = SessionId::new_v4();
    let spec =
        |secret: &str| RuleSpec { signing_secret: Some(secret.into()), ..RuleSpec::new("signed", project, vec![]) };
    let r = store.create_rule(runhook_core::model::RuleId::new_v4(), &spec(a)).await.unwrap();
    let rows: Vec<OutboxRow> =
        (0..2).map(|_| OutboxRow { signing_secrets: vec![a.into()], ..fresh_row(r.id) }).collect();
    queue(store.as_ref(), r.id, &rows).await;
    super::record(store.as_ref(), &[failed(&rows[0], 3, "HTTP 500"), failed(&rows[1], 3, "HTTP 500")]).await.unwrap();
    let secrets = || async {
        let due = store.due_deliveries(&due_now(10)).await.unwrap();
        due.rows.into_iter().map(|(r, _)| (r.id, r.signing_secrets)).collect::<Vec<_>>()
    };

    store.update_rule(r.id, &spec(b)).await.unwrap();
    assert!(store.redeliver(rows[0].id).await.unwrap());
    assert_eq!(secrets().await, [(rows[0].id, vec![b.to_string()])]);

    let mut rotated = spec(c);
    rotated.rotate_from(&spec(b), Timestamp::now(), chrono::Duration::hours(1));
    store.update_rule(r.id, &rotated).await.unwrap();
    let which = Redelivery { rule: Some(r.id), status: Finished::Failed, since: ago(5), until: Timestamp::now() };
    assert_eq!(store.redeliver_matching(&which).await.unwrap(), 1);
    let due = secrets().await;
    assert!(due.contains(&(rows[1].id, vec![c.to_string(), b.to_string()])), "{due:?}");
}

/// Pruning deletes deliveries queued and finished before the cutoff, a
/// bounded number per call; pending ones never.
pub async fn pruning_removes_only_deliveries_queued_and_finished_before_the_cutoff(h: &dyn Harness) {
    let store = fresh(h).await;
    let r = rule(store.as_ref(), SessionId::new_v4(), vec![hook("https://hooks.example.com/x")]).await;
    // Queued 40 days ago: delivered, failed, pending, redelivered (pending
    // again); queued after the cutoff: delivered.
    let days = |d: i64| ago(d * 24 * 60);
    let rows: Vec<OutboxRow> =
        [40, 40, 40, 40, -1].into_iter().map(|d| OutboxRow { created_at: days(d), ..fresh_row(r.id) }).collect();
    queue(store.as_ref(), r.id, &rows).await;
    let [done, gave_up, pending, redelivered, recent] = [0, 1, 2, 3, 4].map(|i| rows[i].id);
    let records =
        [delivered(&rows[0], 1), failed(&rows[1], 3, "HTTP 404"), delivered(&rows[3], 1), delivered(&rows[4], 1)];
    super::record(store.as_ref(), &records).await.unwrap();
    assert!(store.redeliver(redelivered).await.unwrap());

    let cutoff = Timestamp::from_datetime(chrono::Utc::now() + chrono::Duration::minutes(1));
    assert_eq!(store.prune_deliveries(cutoff, 1).await.unwrap(), 1);
    assert_eq!(store.prune_deliveries(cutoff, 10).await.unwrap(), 1);
    assert_eq!(store.prune_deliveries(cutoff, 10).await.unwrap(), 0);
    for id in [done, gave_up] {
        assert!(store.get_delivery(id).await.unwrap().is_none());
    }
    for id in [pending, redelivered, recent] {
        assert!(store.get_delivery(id).await.unwrap().is_some());
    }
}

fn terms(now: Timestamp, lease_ms: u64) -> ClaimTerms {
    ClaimTerms { now, lease: std::time::Duration::from_millis(lease_ms), give_up_after: 3, per_endpoint: 100 }
}

fn seconds_from_now(s: i64) -> Timestamp {
    Timestamp::from_datetime(chrono::Utc::now() + chrono::Duration::seconds(s))
}

/// A claim makes a delivery one worker's: no due read returns it, no other
/// claim takes it, and only a record with its token is kept (and frees it).
pub async fn a_claimed_delivery_is_one_workers_until_its_record(h: &dyn Harness) {
    let store = fresh(h).await;
    let r = rule(store.as_ref(), SessionId::new_v4(), vec![]).await;
    let rows = [fresh_row(r.id), fresh_row(r.id)];
    queue(store.as_ref(), r.id, &rows).await;
    let now = Timestamp::now();
    let first = store.claim_deliveries(&[rows[0].id], &terms(now, 60_000)).await.unwrap();
    let [ClaimOutcome::Claimed { claim, attempts: 0 }] = first.as_slice() else { panic!("not claimed: {first:?}") };
    let due = store.due_deliveries(&due_now(10)).await.unwrap();
    assert_eq!(due.rows.iter().map(|(r, _)| r.id).collect::<Vec<_>>(), [rows[1].id], "a live claim is not due");
    let again = store.claim_deliveries(&[rows[0].id, DeliveryId::new_v7()], &terms(now, 60_000)).await.unwrap();
    assert_eq!(again, [ClaimOutcome::Missed, ClaimOutcome::Missed]);

    let stranger = crate::DeliveryRecord { claim: ClaimToken::new(), ..delivered(&rows[0], 1) };
    assert_eq!(store.record_deliveries(&[stranger]).await.unwrap(), [rows[0].id]);
    let d = store.get_delivery(rows[0].id).await.unwrap().unwrap();
    assert_eq!((d.status.as_str(), d.history.len()), ("pending", 0), "a refused record changes nothing");

    let mine = crate::DeliveryRecord {
        claim: claim.token,
        status: DeliveryStatus::Retry { at: now, error: "HTTP 503".into() },
        ..failed(&rows[0], 1, "HTTP 503")
    };
    assert!(store.record_deliveries(&[mine]).await.unwrap().is_empty());
    let due = store.due_deliveries(&due_now(10)).await.unwrap();
    assert!(due.rows.iter().any(|(r, _)| r.id == rows[0].id), "the record freed the claim");
    let retry = store.claim_deliveries(&[rows[0].id], &terms(Timestamp::now(), 60_000)).await.unwrap();
    assert!(matches!(retry.as_slice(), [ClaimOutcome::Claimed { attempts: 1, .. }]), "{retry:?}");
    // A claim's record is refused once its delivery is gone.
    let [ClaimOutcome::Claimed { claim, .. }] = retry.as_slice() else { unreachable!() };
    store.delete_rule(r.id).await.unwrap();
    let late = crate::DeliveryRecord { claim: claim.token, ..delivered(&rows[0], 2) };
    assert_eq!(store.record_deliveries(&[late]).await.unwrap(), [rows[0].id]);
}

/// A claim that expires without a record is an attempt cut short: the
/// next claim lists it as interrupted and counts it, and a delivery
/// interrupted until the limit is failed instead of claimed.
pub async fn an_expired_claim_is_an_interrupted_attempt(h: &dyn Harness) {
    let store = fresh(h).await;
    let r = rule(store.as_ref(), SessionId::new_v4(), vec![]).await;
    let row = fresh_row(r.id);
    queue(store.as_ref(), r.id, std::slice::from_ref(&row)).await;
    let claim_at = |s| {
        let store = store.clone();
        async move { store.claim_deliveries(&[row.id], &terms(seconds_from_now(s), 1_000)).await.unwrap() }
    };
    assert!(matches!(claim_at(0).await.as_slice(), [ClaimOutcome::Claimed { attempts: 0, .. }]));
    // Still live a moment later; expired after its lease.
    assert_eq!(claim_at(0).await, [ClaimOutcome::Missed]);
    let second = claim_at(5).await;
    assert!(matches!(second.as_slice(), [ClaimOutcome::Claimed { attempts: 1, .. }]), "{second:?}");
    let d = store.get_delivery(row.id).await.unwrap().unwrap();
    assert_eq!((d.status.as_str(), d.attempts), ("pending", 1));
    assert_eq!(d.history.iter().map(|a| (a.attempt, a.class.as_str())).collect::<Vec<_>>(), [(1, "interrupted")]);

    let third = claim_at(10).await;
    assert!(matches!(third.as_slice(), [ClaimOutcome::Claimed { attempts: 2, .. }]), "{third:?}");
    assert_eq!(claim_at(15).await, [ClaimOutcome::GaveUp], "three attempts interrupted: the limit");
    let d = store.get_delivery(row.id).await.unwrap().unwrap();
    assert_eq!((d.status.as_str(), d.attempts, d.history.len()), ("failed", 3, 3));
    assert!(d.last_error.as_deref().is_some_and(|e| e.contains("interrupted")), "{:?}", d.last_error);
    assert_eq!(claim_at(20).await, [ClaimOutcome::Missed]);
}

/// A delivery queued for one of a rule's webhooks (by its id) is
/// redelivered to that webhook's URL as it is now, among several webhooks,
/// even when its URL changed.
pub async fn a_redelivery_follows_its_webhook_by_id(h: &dyn Harness) {
    let store = fresh(h).await;
    let with_id =
        |url: &str| WebhookTarget { id: Some(runhook_core::model::WebhookId::new_v4()), ..WebhookTarget::new(url) };
    let (x, y) = (with_id("https://x.example/hook?v=1"), with_id("https://y.example/hook"));
    let project = SessionId::new_v4();
    let r = rule(store.as_ref(), project, vec![x.clone(), y.clone()]).await;
    let rows = [&x, &y].map(|target| OutboxRow::queued(r.id, target, "{}".into(), vec![]));
    assert_eq!(rows[0].webhook_id, x.id);
    queue(store.as_ref(), r.id, &rows).await;
    super::record(store.as_ref(), &rows.each_ref().map(|row| failed(row, 1, "HTTP 410"))).await.unwrap();

    // x's URL changes in place; y stays.
    let moved = WebhookTarget { url: "https://x2.example/hook?v=2".into(), ..x.clone() };
    store.update_rule(r.id, &RuleSpec::new("conformance", project, vec![moved.clone(), y.clone()])).await.unwrap();
    let every = Redelivery { rule: Some(r.id), status: Finished::Failed, since: ago(5), until: Timestamp::now() };
    assert_eq!(store.redeliver_matching(&every).await.unwrap(), 2);
    let due = store.due_deliveries(&due_now(10)).await.unwrap().rows;
    let url = |id| due.iter().find(|(row, _)| row.id == id).map(|(row, _)| (row.url.clone(), row.webhook_id));
    assert_eq!(url(rows[0].id), Some((moved.url.clone(), x.id)));
    assert_eq!(url(rows[1].id), Some((y.url.clone(), y.id)));
}
