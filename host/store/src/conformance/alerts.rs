//! [`AlertStore`](crate::AlertStore): alerts kept with their secrets
//! sealed, an evaluation committed whole over the version it read (a
//! second one over the same version commits nothing), and a deleted
//! alert's pending notifications gone.

use std::collections::BTreeMap;

use runhook_core::model::alert::{AlertSpec, AlertState, Condition, Level, Metric, NoData};
use runhook_core::model::{AlertId, RuleId, SessionId, Timestamp, WebhookTarget};

use super::{Harness, fresh, hook};
use crate::{DeliveryQuery, OutboxRow, StoreError};

fn spec(session_id: SessionId) -> AlertSpec {
    let headers = BTreeMap::from([("authorization".to_string(), "Bearer s3cret".to_string())]);
    AlertSpec {
        display_name: "errors".into(),
        session_id,
        filter: Some("eq(run_type, \"llm\")".into()),
        metric: Metric::ErrorRate,
        window_minutes: 5,
        condition: Condition::Above,
        warning: Some(0.1),
        critical: Some(0.5),
        no_data: NoData::Keep,
        evaluate_every_seconds: 30,
        reminder_minutes: 15,
        webhooks: vec![WebhookTarget { headers: Some(headers), ..hook("https://hooks.example.com/a?token=t0k3n") }],
        signing_secret: Some("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into()),
        is_enabled: true,
    }
}

fn notification(alert: AlertId) -> OutboxRow {
    OutboxRow::queued(RuleId(alert.0), &hook("https://hooks.example.com/a?token=t0k3n"), "{}".into(), vec![])
}

pub async fn alerts_commit_each_evaluation_once(h: &dyn Harness) {
    let store = fresh(h).await;
    let (id, project) = (AlertId::new_v4(), SessionId::new_v4());
    let spec = || spec(project);
    let created = store.create_alert(id, &spec()).await.unwrap();
    assert_eq!((created.spec.clone(), created.state.clone(), created.version), (spec(), AlertState::default(), 0));
    assert!(matches!(store.create_alert(id, &spec()).await, Err(StoreError::Conflict(_))));
    let changed = AlertSpec { critical: Some(0.6), ..spec() };
    assert_eq!(store.update_alert(id, &changed).await.unwrap().spec, changed);
    assert_eq!(store.list_alerts().await.unwrap().len(), 1);

    // An evaluation over version 0: its state and its notification.
    let bad =
        AlertState { level: Level::Critical, incident: 1, bad_since: Some(Timestamp::now()), ..AlertState::default() };
    let row = notification(id);
    store.commit_evaluation(id, 0, &bad, std::slice::from_ref(&row)).await.unwrap();
    let after = store.get_alert(id).await.unwrap().unwrap();
    assert_eq!((after.state.clone(), after.version), (bad.clone(), 1));
    let q = DeliveryQuery { rule: Some(RuleId(id.0)), limit: 10, ..DeliveryQuery::default() };
    assert_eq!(store.list_deliveries(&q).await.unwrap().len(), 1);

    // A second evaluation over the same version (another replica) commits nothing.
    let other = notification(id);
    let raced = store.commit_evaluation(id, 0, &AlertState::default(), &[other]).await;
    assert!(matches!(raced, Err(StoreError::Conflict(_))), "{raced:?}");
    assert_eq!(store.get_alert(id).await.unwrap().unwrap().state, bad);
    assert_eq!(store.list_deliveries(&q).await.unwrap().len(), 1);
    // An update keeps the state.
    assert_eq!(store.update_alert(id, &spec()).await.unwrap().state, bad);

    // Deleted: gone, with its pending notification.
    assert!(store.delete_alert(id).await.unwrap());
    assert!(!store.delete_alert(id).await.unwrap());
    assert!(store.get_alert(id).await.unwrap().is_none());
    assert!(store.list_deliveries(&q).await.unwrap().is_empty());
    assert!(matches!(store.commit_evaluation(id, 1, &bad, &[]).await, Err(StoreError::Conflict(_))));
    assert!(matches!(store.update_alert(id, &spec()).await, Err(StoreError::Conflict(_))));
}
