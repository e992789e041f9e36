//! [`DatasetStore`](crate::DatasetStore): datasets by name and id with
//! their example counts; examples created all or none, listed by dataset,
//! id and split, changed and deleted.

use serde_json::json;

use runhook_core::model::{Dataset, DatasetId, Example, ExampleId, RunId, Timestamp};

use super::{Harness, fresh};
use crate::{DatasetQuery, ExampleChanges, ExampleQuery, StoreError};

fn dataset(name: &str) -> Dataset {
    let now = Timestamp::now();
    Dataset {
        id: DatasetId::new_v4(),
        name: name.into(),
        description: Some("d".into()),
        data_type: "kv".into(),
        inputs_schema: None,
        outputs_schema: Some(json!({"type": "object"})),
        metadata: Some(json!({"team": "ml"})),
        created_at: now,
        modified_at: now,
        example_count: 0,
    }
}

fn example(dataset: DatasetId, n: u32, splits: &[&str]) -> Example {
    let now = Timestamp::now();
    Example {
        id: ExampleId::new_v7(),
        dataset_id: dataset,
        inputs: json!({"q": n}),
        outputs: Some(json!({"a": n})),
        metadata: None,
        splits: splits.iter().map(|s| s.to_string()).collect(),
        source_run_id: (n == 0).then(RunId::new_v4),
        created_at: now,
        modified_at: now,
    }
}

fn all() -> ExampleQuery {
    ExampleQuery { limit: 100, ..ExampleQuery::default() }
}

pub async fn datasets_and_examples_are_kept_listed_and_changed(h: &dyn Harness) {
    let store = fresh(h).await;
    let (a, b) = (dataset("answers"), dataset("other"));
    store.create_dataset(&a).await.unwrap();
    store.create_dataset(&b).await.unwrap();
    let again = Dataset { id: DatasetId::new_v4(), ..dataset("answers") };
    assert!(matches!(store.create_dataset(&again).await, Err(StoreError::Conflict(_))), "a taken name");

    let examples: Vec<Example> =
        (0..3).map(|n| example(a.id, n, if n == 2 { &["test"] } else { &["base", "train"] })).collect();
    store.create_examples(&examples).await.unwrap();
    let read = store.get_dataset(a.id).await.unwrap().unwrap();
    assert_eq!((read.name.as_str(), read.example_count, read.metadata.clone()), ("answers", 3, a.metadata.clone()));
    assert_eq!(read.outputs_schema, a.outputs_schema);

    // All or none: one missing dataset or one taken id, and nothing is stored.
    let stray = example(DatasetId::new_v4(), 7, &["base"]);
    let batch = vec![example(a.id, 5, &["base"]), stray];
    assert!(matches!(store.create_examples(&batch).await, Err(StoreError::DatasetNotFound(_))));
    let batch = vec![example(a.id, 6, &["base"]), examples[0].clone()];
    assert!(matches!(store.create_examples(&batch).await, Err(StoreError::Conflict(_))));
    assert_eq!(store.get_dataset(a.id).await.unwrap().unwrap().example_count, 3);

    let by_name = DatasetQuery { name: Some("answers".into()), limit: 10, ..DatasetQuery::default() };
    assert_eq!(store.list_datasets(&by_name).await.unwrap().iter().map(|d| d.id).collect::<Vec<_>>(), [a.id]);
    let contains = DatasetQuery { name_contains: Some("THE".into()), limit: 10, ..DatasetQuery::default() };
    assert_eq!(store.list_datasets(&contains).await.unwrap().iter().map(|d| d.id).collect::<Vec<_>>(), [b.id]);
    let ids = DatasetQuery { ids: vec![a.id, b.id], limit: 1, offset: 1, ..DatasetQuery::default() };
    assert_eq!(store.list_datasets(&ids).await.unwrap().len(), 1);

    let of_a = ExampleQuery { dataset: Some(a.id), ..all() };
    let listed = store.list_examples(&of_a).await.unwrap();
    assert_eq!(listed, examples, "in the order added, read back whole");
    let test = ExampleQuery { dataset: Some(a.id), splits: vec!["test".into()], ..all() };
    assert_eq!(store.list_examples(&test).await.unwrap().iter().map(|e| e.id).collect::<Vec<_>>(), [examples[2].id]);
    let train = ExampleQuery { splits: vec!["train".into(), "nope".into()], ..all() };
    assert_eq!(store.list_examples(&train).await.unwrap().len(), 2);
    let tra = ExampleQuery { splits: vec!["tra".into()], ..all() };
    assert!(store.list_examples(&tra).await.unwrap().is_empty(), "a split matches whole names only");
    let page = ExampleQuery { ids: vec![examples[1].id, examples[2].id], limit: 1, offset: 1, ..all() };
    assert_eq!(store.list_examples(&page).await.unwrap().iter().map(|e| e.id).collect::<Vec<_>>(), [examples[2].id]);

    let changes = ExampleChanges {
        inputs: None,
        outputs: Some(json!({"a": "corrected"})),
        metadata: Some(json!({"by": "reviewer"})),
        splits: Some(vec!["gold".into()]),
        at: Timestamp::now(),
    };
    let changed = store.update_example(examples[1].id, &changes).await.unwrap().unwrap();
    assert_eq!(changed.inputs, examples[1].inputs, "unchanged when not given");
    assert_eq!((changed.outputs, changed.splits.clone()), (Some(json!({"a": "corrected"})), vec!["gold".to_string()]));
    assert_eq!(store.get_example(examples[1].id).await.unwrap().unwrap().metadata, Some(json!({"by": "reviewer"})));
    assert!(store.update_example(ExampleId::new_v4(), &changes).await.unwrap().is_none());

    assert!(store.delete_example(examples[0].id).await.unwrap());
    assert!(!store.delete_example(examples[0].id).await.unwrap());
    assert!(store.get_example(examples[0].id).await.unwrap().is_none());
    assert!(store.delete_dataset(a.id).await.unwrap());
    assert!(store.get_dataset(a.id).await.unwrap().is_none());
    assert!(store.get_example(examples[2].id).await.unwrap().is_none(), "examples go with their dataset");
    assert!(store.get_dataset(b.id).await.unwrap().is_some());
}
