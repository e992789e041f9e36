//! Datasets and examples, as the LangSmith SDK calls them:
//! `POST|GET /datasets`, `GET|DELETE /datasets/{id}`, `POST /examples`,
//! `POST /examples/bulk`, `GET /examples`, `GET|PATCH|DELETE
//! /examples/{id}`.
//!
//! Bodies are the SDK's: keys runhook does not keep (`transformations`,
//! `attachments`, `created_at` ...) are accepted and ignored, as the SDK
//! sends many. An example made with `source_run_id` and
//! `use_source_run_io` takes the run's inputs and outputs. Its splits
//! (`split`, `"base"` when absent) are shown in its metadata as
//! `dataset_split`, as LangSmith shows them. Lists page by `limit` and
//! `offset`, which the SDK follows until a short page.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::error::ApiError;
use super::{AppState, body, path_id, query_offset, query_pairs, query_usize};
use runhook_core::model::dataset::splits_from;
use runhook_core::model::{Dataset, DatasetId, Example, ExampleId, RunId, Timestamp};
use runhook_store::{DatasetQuery, ExampleChanges, ExampleQuery};

/// Longest dataset name.
const MAX_NAME: usize = 512;

fn dataset_json(state: &AppState, d: &Dataset) -> Value {
    json!({
        "id": d.id,
        "name": d.name,
        "description": d.description,
        "data_type": d.data_type,
        "inputs_schema_definition": d.inputs_schema,
        "outputs_schema_definition": d.outputs_schema,
        "metadata": d.metadata,
        "created_at": d.created_at.to_offset_string(),
        "modified_at": d.modified_at.to_offset_string(),
        "example_count": d.example_count,
        "session_count": 0,
        "last_session_start_time": null,
        "tenant_id": state.store.tenant_id(),
    })
}

pub(super) fn example_json(e: &Example) -> Value {
    json!({
        "id": e.id,
        "dataset_id": e.dataset_id,
        "inputs": e.inputs,
        "outputs": e.outputs,
        "metadata": e.shown_metadata(),
        "source_run_id": e.source_run_id,
        "created_at": e.created_at.to_offset_string(),
        "modified_at": e.modified_at.to_offset_string(),
        "attachment_urls": null,
    })
}

/// An object, or absent/null; anything else is refused, naming `what`.
fn object(v: Option<Value>, what: &str) -> Result<Option<Value>, ApiError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(v @ Value::Object(_)) => Ok(Some(v)),
        Some(other) => Err(ApiError::BadRequest(format!("{what}: expected a JSON object, found {other}"))),
    }
}

/// `POST /datasets`'s body (the SDK's `create_dataset`).
#[derive(Deserialize)]
struct DatasetBody {
    name: String,
    description: Option<String>,
    data_type: Option<String>,
    inputs_schema_definition: Option<Value>,
    outputs_schema_definition: Option<Value>,
    extra: Option<Value>,
    metadata: Option<Value>,
}

pub(super) async fn create_dataset(
    State(state): State<AppState>,
    headers: HeaderMap,
    b: Body,
) -> Result<Json<Value>, ApiError> {
    let bytes = body::read_json(&headers, b, state.limits).await?;
    let req: DatasetBody = body::json(&bytes, "dataset")?;
    let name = req.name.trim().to_string();
    if name.is_empty() || name.len() > MAX_NAME {
        return Err(ApiError::BadRequest(format!("name: 1 to {MAX_NAME} characters")));
    }
    let data_type = req.data_type.unwrap_or_else(|| "kv".into());
    if !["kv", "llm", "chat"].contains(&data_type.as_str()) {
        return Err(ApiError::BadRequest(format!("data_type: kv, llm or chat, got {data_type:?}")));
    }
    // The SDK sends metadata inside `extra`.
    let metadata = match req.metadata {
        Some(m) => object(Some(m), "metadata")?,
        None => object(req.extra.and_then(|e| e.get("metadata").cloned()), "extra.metadata")?,
    };
    let now = Timestamp::now();
    let dataset = Dataset {
        id: DatasetId::new_v4(),
        name,
        description: req.description,
        data_type,
        inputs_schema: object(req.inputs_schema_definition, "inputs_schema_definition")?,
        outputs_schema: object(req.outputs_schema_definition, "outputs_schema_definition")?,
        metadata,
        created_at: now,
        modified_at: now,
        example_count: 0,
    };
    state.store.create_dataset(&dataset).await?;
    Ok(Json(dataset_json(&state, &dataset)))
}

pub(super) async fn list_datasets(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let pairs = query_pairs(raw.as_deref(), &state.limits)?;
    let mut q = DatasetQuery {
        limit: query_usize(&pairs, "limit", 100, 1000)?.max(1),
        offset: query_offset(&pairs)?,
        ..DatasetQuery::default()
    };
    for (k, v) in &pairs {
        match k.as_str() {
            "name" => q.name = Some(v.clone()),
            "name_contains" => q.name_contains = Some(v.clone()),
            "id" => q.ids.push(path_id("dataset id", v)?),
            _ => {}
        }
    }
    let found = state.store.list_datasets(&q).await?;
    Ok(Json(Value::Array(found.iter().map(|d| dataset_json(&state, d)).collect())))
}

async fn dataset_or_404(state: &AppState, raw: &str) -> Result<Dataset, ApiError> {
    let id: DatasetId = path_id("dataset id", raw)?;
    state.store.get_dataset(id).await?.ok_or_else(|| ApiError::NotFound(format!("dataset {id} not found")))
}

pub(super) async fn read_dataset(
    State(state): State<AppState>,
    Path(raw): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(dataset_json(&state, &dataset_or_404(&state, &raw).await?)))
}

pub(super) async fn delete_dataset(
    State(state): State<AppState>,
    Path(raw): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id: DatasetId = path_id("dataset id", &raw)?;
    if !state.store.delete_dataset(id).await? {
        return Err(ApiError::NotFound(format!("dataset {id} not found")));
    }
    Ok(Json(json!({"deleted": id})))
}

/// An example as the SDK creates it (`create_example`, each item of
/// `create_examples`).
#[derive(Deserialize)]
struct ExampleBody {
    dataset_id: DatasetId,
    id: Option<ExampleId>,
    inputs: Option<Value>,
    outputs: Option<Value>,
    metadata: Option<Value>,
    split: Option<Value>,
    source_run_id: Option<RunId>,
    #[serde(default)]
    use_source_run_io: bool,
}

/// An example body made into an example, `at` naming it in messages.
async fn example_from(state: &AppState, b: ExampleBody, at: &str) -> Result<Example, ApiError> {
    let bad = |m: String| ApiError::BadRequest(format!("{at}{m}"));
    let (mut inputs, mut outputs) = (object(b.inputs, "inputs")?, object(b.outputs, "outputs")?);
    if b.use_source_run_io {
        let run = b.source_run_id.ok_or_else(|| bad("use_source_run_io needs source_run_id".into()))?;
        let found =
            state.store.get_run(run).await?.ok_or_else(|| ApiError::NotFound(format!("{at}run {run} not found")))?;
        inputs = found.inputs.clone().filter(Value::is_object).or(inputs);
        outputs = found.outputs.clone().filter(Value::is_object).or(outputs);
    }
    let now = Timestamp::now();
    Ok(Example {
        id: b.id.unwrap_or_else(ExampleId::new_v4),
        dataset_id: b.dataset_id,
        inputs: inputs.unwrap_or_else(|| Value::Object(Map::new())),
        outputs,
        metadata: object(b.metadata, "metadata")?.map(without_split),
        splits: splits_from(b.split.as_ref()).map_err(bad)?,
        source_run_id: b.source_run_id,
        created_at: now,
        modified_at: now,
    })
}

/// Metadata as kept: `dataset_split` is the example's splits, kept beside it.
fn without_split(mut m: Value) -> Value {
    if let Some(map) = m.as_object_mut() {
        map.remove("dataset_split");
    }
    m
}

pub(super) async fn create_example(
    State(state): State<AppState>,
    headers: HeaderMap,
    b: Body,
) -> Result<Json<Value>, ApiError> {
    let bytes = body::read_json(&headers, b, state.limits).await?;
    let req: ExampleBody = body::json(&bytes, "example")?;
    let example = example_from(&state, req, "").await?;
    state.store.create_examples(std::slice::from_ref(&example)).await?;
    Ok(Json(example_json(&example)))
}

pub(super) async fn create_examples(
    State(state): State<AppState>,
    headers: HeaderMap,
    b: Body,
) -> Result<Json<Value>, ApiError> {
    let bytes = body::read_json(&headers, b, state.limits).await?;
    let items: Vec<ExampleBody> = body::json(&bytes, "examples")?;
    body::check_list("examples", items.len(), state.limits.max_runs_per_request, "limits.max_runs_per_request")?;
    let mut examples = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        examples.push(example_from(&state, item, &format!("[{i}]: ")).await?);
    }
    state.store.create_examples(&examples).await?;
    Ok(Json(Value::Array(examples.iter().map(example_json).collect())))
}

pub(super) async fn list_examples(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let pairs = query_pairs(raw.as_deref(), &state.limits)?;
    let mut q = ExampleQuery {
        limit: query_usize(&pairs, "limit", 100, 1000)?.max(1),
        offset: query_offset(&pairs)?,
        ..ExampleQuery::default()
    };
    for (k, v) in &pairs {
        match k.as_str() {
            "dataset" => q.dataset = Some(path_id("dataset", v)?),
            "id" => q.ids.push(path_id("example id", v)?),
            "splits" => q.splits.extend(splits_from(Some(&Value::String(v.clone()))).map_err(ApiError::BadRequest)?),
            _ => {}
        }
    }
    let found = state.store.list_examples(&q).await?;
    Ok(Json(Value::Array(found.iter().map(example_json).collect())))
}

fn example_id(raw: &str) -> Result<ExampleId, ApiError> {
    path_id("example id", raw)
}

pub(super) async fn read_example(
    State(state): State<AppState>,
    Path(raw): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = example_id(&raw)?;
    let e = state.store.get_example(id).await?.ok_or_else(|| ApiError::NotFound(format!("example {id} not found")))?;
    Ok(Json(example_json(&e)))
}

/// `PATCH /examples/{id}`'s body (the SDK's `update_example`).
#[derive(Deserialize)]
struct ExamplePatch {
    inputs: Option<Value>,
    outputs: Option<Value>,
    metadata: Option<Value>,
    split: Option<Value>,
    dataset_id: Option<DatasetId>,
}

pub(super) async fn update_example(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    headers: HeaderMap,
    b: Body,
) -> Result<Json<Value>, ApiError> {
    let id = example_id(&raw)?;
    let bytes = body::read_json(&headers, b, state.limits).await?;
    let req: ExamplePatch = body::json(&bytes, "example update")?;
    let stored =
        state.store.get_example(id).await?.ok_or_else(|| ApiError::NotFound(format!("example {id} not found")))?;
    if req.dataset_id.is_some_and(|d| d != stored.dataset_id) {
        return Err(ApiError::BadRequest(format!(
            "dataset_id: example {id} is in dataset {}; examples do not move between datasets",
            stored.dataset_id
        )));
    }
    let changes = ExampleChanges {
        inputs: object(req.inputs, "inputs")?,
        outputs: object(req.outputs, "outputs")?,
        metadata: object(req.metadata, "metadata")?.map(without_split),
        splits: req.split.as_ref().map(|s| splits_from(Some(s))).transpose().map_err(ApiError::BadRequest)?,
        at: Timestamp::now(),
    };
    let e = state
        .store
        .update_example(id, &changes)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("example {id} not found")))?;
    Ok(Json(example_json(&e)))
}

pub(super) async fn delete_example(
    State(state): State<AppState>,
    Path(raw): Path<String>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let id = example_id(&raw)?;
    if !state.store.delete_example(id).await? {
        return Err(ApiError::NotFound(format!("example {id} not found")));
    }
    Ok((StatusCode::OK, Json(json!({"deleted": id}))))
}
