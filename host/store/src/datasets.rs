//! Datasets and examples: LangSmith's named sets of input/output pairs.
//!
//! [`DatasetStore`] is the concern. A dataset's name is unique (a second
//! one is a conflict); examples belong to one dataset and go with it when
//! it is deleted. Lists page newest first by offset, as the SDK pages them.

use async_trait::async_trait;
use serde_json::Value;

use crate::StoreError;
use runhook_core::model::{Dataset, DatasetId, Example, ExampleId, Timestamp};

/// A dataset listing (`GET /datasets`).
#[derive(Debug, Clone, Default)]
pub struct DatasetQuery {
    /// Only these datasets (all when empty).
    pub ids: Vec<DatasetId>,
    /// Exactly this name.
    pub name: Option<String>,
    /// Names containing this, case-insensitively.
    pub name_contains: Option<String>,
    /// Page size.
    pub limit: usize,
    /// Page offset.
    pub offset: usize,
}

/// An example listing (`GET /examples`).
#[derive(Debug, Clone, Default)]
pub struct ExampleQuery {
    /// Of this dataset (any when absent).
    pub dataset: Option<DatasetId>,
    /// Only these examples (all when empty).
    pub ids: Vec<ExampleId>,
    /// In any of these splits (any split when empty).
    pub splits: Vec<String>,
    /// Page size.
    pub limit: usize,
    /// Page offset.
    pub offset: usize,
}

/// What an example update changes (`None`: unchanged).
#[derive(Debug, Clone)]
pub struct ExampleChanges {
    /// New inputs.
    pub inputs: Option<Value>,
    /// New reference outputs.
    pub outputs: Option<Value>,
    /// New metadata.
    pub metadata: Option<Value>,
    /// New splits.
    pub splits: Option<Vec<String>>,
    /// When the change is made.
    pub at: Timestamp,
}

/// Datasets and their examples.
#[async_trait]
pub trait DatasetStore: Send + Sync + std::fmt::Debug {
    /// Stores a new dataset; a conflict when its name or id is taken.
    async fn create_dataset(&self, dataset: &Dataset) -> Result<(), StoreError>;

    /// A dataset with its example count.
    async fn get_dataset(&self, id: DatasetId) -> Result<Option<Dataset>, StoreError>;

    /// Datasets, newest first, with their example counts.
    async fn list_datasets(&self, query: &DatasetQuery) -> Result<Vec<Dataset>, StoreError>;

    /// Deletes a dataset and its examples; whether it existed.
    async fn delete_dataset(&self, id: DatasetId) -> Result<bool, StoreError>;

    /// Stores new examples in one transaction: all or none. A conflict when
    /// an id is taken; not found when a dataset is missing.
    async fn create_examples(&self, examples: &[Example]) -> Result<(), StoreError>;

    /// An example.
    async fn get_example(&self, id: ExampleId) -> Result<Option<Example>, StoreError>;

    /// Examples, oldest first (the order they were added), as the SDK pages them.
    async fn list_examples(&self, query: &ExampleQuery) -> Result<Vec<Example>, StoreError>;

    /// Changes an example; the example as it is now, `None` when it does not exist.
    async fn update_example(&self, id: ExampleId, changes: &ExampleChanges) -> Result<Option<Example>, StoreError>;

    /// Deletes an example; whether it existed.
    async fn delete_example(&self, id: ExampleId) -> Result<bool, StoreError>;
}

/// An example's splits as stored: `,a,b,`, so that "in split `a`" is a
/// `LIKE '%,a,%'` on both backends (split names carry no comma).
pub fn splits_column(splits: &[String]) -> String {
    format!(",{},", splits.join(","))
}

/// The splits of a stored `splits` column.
pub fn splits_of(column: &str) -> Vec<String> {
    column.split(',').filter(|s| !s.is_empty()).map(str::to_string).collect()
}
