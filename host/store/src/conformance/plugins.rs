//! Uploaded plugins: stored once per digest, kept while a rule uses them,
//! never named by a rule unless stored.

use std::sync::Arc;

use runhook_core::model::{PluginRef, PluginSource, RuleId, RuleSpec, SessionId};

use super::{Harness, fresh};
use crate::{PluginRemoval, PluginUpload, Store, StoreError};

fn upload(bytes: &[u8]) -> PluginUpload {
    PluginUpload::new("scorer", vec!["match".into(), "evaluate".into()], bytes.to_vec())
}

fn using(upload: &PluginUpload) -> RuleSpec {
    let mut spec = RuleSpec::new("uses a plugin", SessionId::new_v4(), vec![]);
    let r = PluginRef::new(PluginSource::Uploaded(upload.digest.clone()));
    spec.plugins.matcher = Some(r.clone());
    spec.plugins.evaluate = Some(r);
    spec
}

/// The same bytes stored twice are one plugin; it stays while a rule uses
/// it and goes once none does.
pub async fn uploads_are_content_addressed_and_kept_while_used(h: &dyn Harness) {
    let store = fresh(h).await;
    let up = upload(b"\0asm component bytes");
    let (first, created) = store.put_plugin(&up).await.unwrap();
    assert!(created);
    assert_eq!((first.size, first.capabilities.clone()), (20, vec!["match".to_string(), "evaluate".to_string()]));
    let renamed = PluginUpload { name: "other name".into(), ..up.clone() };
    let (again, created) = store.put_plugin(&renamed).await.unwrap();
    assert!(!created, "the same bytes are stored once");
    assert_eq!(again, first, "and keep the first upload's record");
    assert_eq!(store.plugin_bytes(&up.digest).await.unwrap().as_deref(), Some(&up.bytes[..]));
    let other = upload(b"another component");
    store.put_plugin(&other).await.unwrap();
    let listed: Vec<_> = store.list_plugins().await.unwrap().into_iter().map(|p| p.digest).collect();
    assert_eq!(listed.len(), 2);
    assert!(listed.contains(&up.digest) && listed.contains(&other.digest));

    let rule = store.create_rule(RuleId::new_v4(), &using(&up)).await.unwrap();
    assert_eq!(store.get_plugin(&up.digest).await.unwrap().unwrap().rules, vec![rule.id]);
    assert_eq!(store.delete_plugin(&up.digest).await.unwrap(), PluginRemoval::InUse(vec![rule.id]));
    assert!(store.plugin_bytes(&up.digest).await.unwrap().is_some(), "a plugin in use is kept");

    // An edit that stops using it frees it.
    store.update_rule(rule.id, &RuleSpec { plugins: Default::default(), ..rule.spec.clone() }).await.unwrap();
    assert!(store.get_plugin(&up.digest).await.unwrap().unwrap().rules.is_empty());
    // So does deleting the rule that uses it.
    let second = store.create_rule(RuleId::new_v4(), &using(&other)).await.unwrap();
    assert!(store.delete_rule(second.id).await.unwrap());
    for digest in [&up.digest, &other.digest] {
        assert_eq!(store.delete_plugin(digest).await.unwrap(), PluginRemoval::Removed);
        assert_eq!(store.plugin_bytes(digest).await.unwrap(), None);
        assert_eq!(store.delete_plugin(digest).await.unwrap(), PluginRemoval::NotFound);
    }
    assert!(store.list_plugins().await.unwrap().is_empty());
}

/// A rule naming a digest not stored is refused, created or edited, and
/// nothing of it is stored.
pub async fn a_rule_cannot_name_a_plugin_not_stored(h: &dyn Harness) {
    let store = fresh(h).await;
    let missing = upload(b"never uploaded");
    let id = RuleId::new_v4();
    let refused = store.create_rule(id, &using(&missing)).await;
    assert!(matches!(refused, Err(StoreError::Conflict(ref m)) if m.contains(missing.digest.as_str())), "{refused:?}");
    assert!(store.get_rule(id).await.unwrap().is_none(), "nothing stored");
    let plain = RuleSpec::new("plain", SessionId::new_v4(), vec![]);
    store.create_rule(id, &plain).await.unwrap();
    assert!(matches!(store.update_rule(id, &using(&missing)).await, Err(StoreError::Conflict(_))));
    assert_eq!(store.get_rule(id).await.unwrap().unwrap().spec, plain, "the rule is as it was");
}

/// A rule saved while its plugin is deleted: either the rule is refused
/// or the plugin stays; never a rule naming bytes that are gone.
pub async fn a_plugin_deleted_while_a_rule_is_saved_is_never_left_missing(h: &dyn Harness) {
    let store: Arc<dyn Store> = fresh(h).await;
    for i in 0..20u8 {
        let up = upload(&[i; 32]);
        store.put_plugin(&up).await.unwrap();
        let (a, b) = (store.clone(), store.clone());
        let spec = using(&up);
        let digest = up.digest.clone();
        let id = RuleId::new_v4();
        let saved = tokio::spawn(async move { a.create_rule(id, &spec).await });
        let removed = tokio::spawn(async move { b.delete_plugin(&digest).await });
        let (saved, removed) = (saved.await.unwrap(), removed.await.unwrap().unwrap());
        match (saved, removed) {
            (Ok(_), PluginRemoval::InUse(users)) => assert_eq!(users, vec![id]),
            (Err(StoreError::Conflict(_)), PluginRemoval::Removed) => {
                assert!(store.get_rule(id).await.unwrap().is_none());
            }
            (saved, removed) => panic!("round {i}: rule {saved:?}, plugin {removed:?}"),
        }
        let stored = store.get_plugin(&up.digest).await.unwrap();
        let rule = store.get_rule(id).await.unwrap();
        assert_eq!(stored.is_some(), rule.is_some(), "round {i}: a stored rule keeps its plugin");
    }
}
