//! Leases: rules spread over replicas, taken over when one stops renewing,
//! and fenced, so a former owner commits nothing.

use std::time::Duration;

use runhook_core::model::{RuleId, RuleSpec, SessionId};

use super::{Harness, fresh, rang};
use crate::{Lease, Store, StoreError, leases::fair_share};

const LONG: Duration = Duration::from_secs(60);

async fn rules(store: &dyn Store, n: usize) -> Vec<RuleId> {
    let mut ids = Vec::new();
    for i in 0..n {
        let spec = RuleSpec::new(format!("leased {i}"), SessionId::new_v4(), vec![]);
        ids.push(store.create_rule(RuleId::new_v4(), &spec).await.unwrap().id);
    }
    ids
}

/// An empty cycle of `rule` under `lease`.
async fn commit_under(store: &dyn Store, rule: RuleId, lease: Option<Lease>) -> Result<(), StoreError> {
    super::commit_in_place(store, rule, &[], lease).await
}

/// Two replicas split the rules between them, each its fair share, and
/// each can commit only the rules it holds.
pub async fn rules_are_spread_over_the_live_replicas(h: &dyn Harness) {
    let store = fresh(h).await;
    let ids = rules(store.as_ref(), 5).await;
    assert_eq!(store.heartbeat("a", LONG).await.unwrap(), 1);
    assert_eq!(store.heartbeat("b", LONG).await.unwrap(), 2);
    let reported = store.replica_keys().await.unwrap();
    let names: Vec<&str> = reported.iter().map(|(r, _)| r.as_str()).collect();
    assert_eq!(names, ["a", "b"], "both report their keys");
    assert!(!reported[0].1.is_empty() && reported[0].1 == reported[1].1, "{reported:?}");
    let share = fair_share(ids.len(), 2);
    let a = store.balance_leases("a", share, LONG).await.unwrap();
    let b = store.balance_leases("b", share, LONG).await.unwrap();
    assert_eq!((a.len(), b.len()), (3, 2), "a takes its share, b the rest");
    let mut all: Vec<RuleId> = a.iter().chain(&b).map(|l| l.rule).collect();
    all.sort_unstable();
    let mut want = ids.clone();
    want.sort_unstable();
    assert_eq!(all, want, "every rule held once");
    // Renewing keeps the same leases (same epochs).
    assert_eq!(store.balance_leases("a", share, LONG).await.unwrap().len(), 3);
    let again = store.balance_leases("a", share, LONG).await.unwrap();
    assert!(again.iter().all(|l| a.contains(l)), "renewed, not retaken");

    commit_under(store.as_ref(), a[0].rule, Some(a[0].clone())).await.unwrap();
    let stolen = Lease { owner: "b".into(), ..a[0].clone() };
    assert!(matches!(commit_under(store.as_ref(), a[0].rule, Some(stolen)).await, Err(StoreError::Conflict(_))));
    rang(store.as_ref());

    // A replica with a smaller share gives up its surplus; another takes it.
    let fewer = store.balance_leases("a", 1, LONG).await.unwrap();
    assert_eq!(fewer.len(), 1);
    let more = store.balance_leases("b", 4, LONG).await.unwrap();
    assert_eq!(more.len(), 4);
    // Leaving frees everything at once.
    store.leave("b").await.unwrap();
    assert_eq!(store.replica_keys().await.unwrap().len(), 1, "b is gone");
    assert_eq!(store.balance_leases("a", 5, LONG).await.unwrap().len(), 5);
}

/// A lease not renewed expires; another replica takes the rule with a
/// newer epoch, and the former owner's commit is refused whole.
pub async fn an_expired_lease_is_taken_over_and_fences_its_former_owner(h: &dyn Harness) {
    let store = fresh(h).await;
    let id = rules(store.as_ref(), 1).await[0];
    let short = Duration::from_millis(300);
    let old = store.balance_leases("a", 1, short).await.unwrap().pop().expect("a takes the rule");
    assert!(store.balance_leases("b", 1, LONG).await.unwrap().is_empty(), "held by a while live");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let new = loop {
        if let Some(l) = store.balance_leases("b", 1, LONG).await.unwrap().pop() {
            break l;
        }
        assert!(std::time::Instant::now() < deadline, "b never took the expired lease");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(new.rule, id);
    assert!(new.epoch > old.epoch, "a takeover bumps the epoch");
    let before = store.rule_cycles(id, 10).await.unwrap().len();
    assert!(matches!(commit_under(store.as_ref(), id, Some(old.clone())).await, Err(StoreError::Conflict(_))));
    assert_eq!(store.rule_cycles(id, 10).await.unwrap().len(), before, "nothing of the refused cycle is kept");
    // Nor can the former owner renew or retake it while b holds it.
    assert!(store.balance_leases("a", 1, LONG).await.unwrap().is_empty());
    commit_under(store.as_ref(), id, Some(new)).await.unwrap();
    assert_eq!(store.rule_cycles(id, 10).await.unwrap().len(), before + 1);
}

/// A singleton is held by one replica until it stops renewing it.
pub async fn a_singleton_has_one_holder(h: &dyn Harness) {
    let store = fresh(h).await;
    let short = Duration::from_millis(300);
    assert!(store.hold_singleton("retention", "a", short).await.unwrap());
    assert!(store.hold_singleton("retention", "a", short).await.unwrap(), "renewed");
    assert!(!store.hold_singleton("retention", "b", LONG).await.unwrap());
    assert!(store.hold_singleton("other", "b", LONG).await.unwrap(), "singletons are independent");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !store.hold_singleton("retention", "b", LONG).await.unwrap() {
        assert!(std::time::Instant::now() < deadline, "b never took the expired singleton");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!store.hold_singleton("retention", "a", LONG).await.unwrap());
}
