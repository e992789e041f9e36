//! [`SecretStore`](crate::SecretStore) and sealing at rest as readers see
//! it: secrets come back in clear, and survive a key rotation.

use runhook_core::model::{RuleId, RuleSpec, SessionId, WebhookTarget};
use runhook_core::secrets::Keyring;

use super::{Harness, queue};
use crate::DueQuery;

fn secret_spec() -> RuleSpec {
    let hook = WebhookTarget {
        headers: Some([("authorization".to_string(), "Bearer k3y".to_string())].into_iter().collect()),
        ..WebhookTarget::new("https://hooks.example.com/in?token=t0k3n")
    };
    RuleSpec {
        signing_secret: Some("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into()),
        ..RuleSpec::new("s", SessionId::new_v4(), vec![hook])
    }
}

/// A rule's URL, headers and signing secret, and a queued delivery's
/// target, read back exactly as written.
pub async fn secrets_read_back_in_clear(h: &dyn Harness) {
    let store = super::fresh(h).await;
    let spec = secret_spec();
    let r = store.create_rule(RuleId::new_v4(), &spec).await.unwrap();
    assert_eq!(store.get_rule(r.id).await.unwrap().unwrap().spec, spec);
    assert_eq!(store.list_rules().await.unwrap()[0].spec, spec);
    let row = signed_row(&spec, r.id);
    queue(store.as_ref(), r.id, std::slice::from_ref(&row)).await;
    let due = store
        .due_deliveries(&DueQuery { now: runhook_core::model::Timestamp::now(), limit: 10, busy: vec![], after: None })
        .await
        .unwrap();
    let (got, _) = &due.rows[0];
    assert_eq!((&got.url, &got.headers, &got.signing_secrets), (&row.url, &row.headers, &row.signing_secrets));
    assert_eq!(store.get_delivery(row.id).await.unwrap().unwrap().url, row.url);
}

/// After a new key is put first, re-sealing changes every stored secret
/// once (a second run finds nothing), and the store then opens with the
/// new key alone.
pub async fn secrets_are_resealed_under_the_current_key(h: &dyn Harness) {
    let old = Keyring::generate();
    let spec = secret_spec();
    let (rule_id, row) = {
        let store = h.open(&old).await;
        let r = store.create_rule(RuleId::new_v4(), &spec).await.unwrap();
        let row = signed_row(&spec, r.id);
        queue(store.as_ref(), r.id, std::slice::from_ref(&row)).await;
        assert_eq!(store.reseal_secrets().await.unwrap(), 0, "everything is under the current key already");
        (r.id, row)
    };
    let rotating = old.with_new_key();
    let store = h.open(&rotating).await;
    let changed = store.reseal_secrets().await.unwrap();
    assert!(changed >= 3, "the rule's URL, header and secret, and the delivery's target: {changed}");
    assert_eq!(store.reseal_secrets().await.unwrap(), 0);
    drop(store);

    let store = h.open(&rotating.current_only()).await;
    assert_eq!(store.get_rule(rule_id).await.unwrap().unwrap().spec, spec);
    let due = store
        .due_deliveries(&DueQuery { now: runhook_core::model::Timestamp::now(), limit: 10, busy: vec![], after: None })
        .await
        .unwrap();
    assert_eq!(
        due.rows.iter().map(|(r, _)| (&r.url, &r.signing_secrets)).collect::<Vec<_>>(),
        [(&row.url, &row.signing_secrets)]
    );
}

/// A delivery of the rule's webhook signed with its secret, as a cycle queues it.
fn signed_row(spec: &RuleSpec, rule: RuleId) -> crate::OutboxRow {
    let secrets = spec.signing_secrets(runhook_core::model::Timestamp::now());
    crate::OutboxRow {
        signing_secrets: secrets,
        ..crate::OutboxRow::queued(rule, &spec.webhooks[0], "{}".into(), vec![])
    }
}
