//! [`QueueStore`](crate::QueueStore): queues, runs added once and in
//! order, worked through (done, removed), and a cycle's queued runs.

use runhook_core::model::{QueueId, Timestamp};

use super::{Harness, finished_run, fresh, post};
use crate::{AnnotationQueue, QueueQuery, StoreError};

pub async fn queues_hold_runs_once_in_order_until_reviewed(h: &dyn Harness) {
    let store = fresh(h).await;
    let now = Timestamp::now();
    let q = AnnotationQueue {
        id: QueueId::new_v4(),
        name: "review".into(),
        description: None,
        rubric_instructions: Some("right?".into()),
        created_at: now,
        updated_at: now,
    };
    store.create_queue(&q).await.unwrap();
    assert!(matches!(store.create_queue(&q).await, Err(StoreError::Conflict(_))));
    assert_eq!(store.get_queue(q.id).await.unwrap(), Some(q.clone()));
    let named = QueueQuery { name_contains: Some("REV".into()), limit: 10, ..QueueQuery::default() };
    assert_eq!(store.list_queues(&named).await.unwrap(), std::slice::from_ref(&q));

    let runs = post(store.as_ref(), (0..3).map(|i| finished_run("p", i)).collect()).await;
    // Given in an order that is not the ids' order: kept as given.
    let order = [runs[2], runs[0], runs[1]];
    store.add_to_queue(q.id, &order[..2], now).await.unwrap();
    store.add_to_queue(q.id, &order[1..], Timestamp::now()).await.unwrap();
    let all = store.queue_entries(q.id, None, 10, 0).await.unwrap();
    assert_eq!(all.iter().map(|e| e.run_id).collect::<Vec<_>>(), order, "each run once, in the order added");
    let missing = runhook_core::model::RunId::new_v4();
    assert!(matches!(store.add_to_queue(q.id, &[runs[0], missing], now).await, Err(StoreError::RunNotFound(_))));
    assert!(matches!(store.add_to_queue(QueueId::new_v4(), &runs, now).await, Err(StoreError::QueueNotFound(_))));

    assert!(store.mark_reviewed(q.id, order[0], true, Timestamp::now()).await.unwrap());
    let todo = store.queue_entries(q.id, Some(false), 10, 0).await.unwrap();
    assert_eq!(todo.iter().map(|e| e.run_id).collect::<Vec<_>>(), &order[1..]);
    let done = store.queue_entries(q.id, Some(true), 10, 0).await.unwrap();
    assert!(done[0].done && done[0].last_reviewed_time.is_some());
    assert_eq!(store.queue_entries(q.id, Some(false), 1, 1).await.unwrap()[0].run_id, order[2], "index 1 of the rest");
    assert!(store.remove_from_queue(q.id, order[1]).await.unwrap());
    assert!(!store.remove_from_queue(q.id, order[1]).await.unwrap());
    assert!(!store.mark_reviewed(q.id, order[1], true, now).await.unwrap());
    assert!(store.delete_queue(q.id).await.unwrap());
    assert!(store.get_queue(q.id).await.unwrap().is_none());
    assert!(store.queue_entries(q.id, None, 10, 0).await.unwrap().is_empty());
}
