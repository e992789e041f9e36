"""Datasets and examples through the real LangSmith SDK: every call a
receiver or an evaluation script makes, against the real binary."""

import uuid

import pytest
from langsmith import traceable, tracing_context
from langsmith.utils import LangSmithConflictError, LangSmithNotFoundError

from conftest import wait_for


def test_datasets_are_created_read_by_id_and_name_and_listed(client):
    name = f"ds-{uuid.uuid4().hex[:8]}"
    created = client.create_dataset(name, description="answers to keep", metadata={"team": "ml"})
    assert created.name == name and created.description == "answers to keep"
    assert client.read_dataset(dataset_id=created.id).name == name
    by_name = client.read_dataset(dataset_name=name)
    assert by_name.id == created.id and by_name.example_count == 0
    assert by_name.metadata["team"] == "ml"
    assert client.has_dataset(dataset_name=name)
    assert not client.has_dataset(dataset_name=name + "-missing")
    with pytest.raises(LangSmithNotFoundError):
        client.read_dataset(dataset_id=uuid.uuid4())
    with pytest.raises(LangSmithConflictError):
        client.create_dataset(name)
    other = client.create_dataset(f"{name}-other")
    listed = {d.id for d in client.list_datasets(dataset_name_contains=name)}
    assert listed == {created.id, other.id}
    assert [d.id for d in client.list_datasets(dataset_ids=[other.id])] == [other.id]
    assert [d.id for d in client.list_datasets(dataset_name=name)] == [created.id]


def test_examples_are_created_listed_read_updated_and_deleted(client):
    dataset = client.create_dataset(f"ex-{uuid.uuid4().hex[:8]}")
    one = client.create_example(
        inputs={"question": "2+2?"}, outputs={"answer": "4"}, dataset_id=dataset.id, metadata={"source": "manual"}
    )
    assert one.dataset_id == dataset.id and one.inputs == {"question": "2+2?"} and one.outputs == {"answer": "4"}
    assert one.metadata == {"source": "manual", "dataset_split": ["base"]}
    by_name = client.create_example(inputs={"question": "3+3?"}, outputs={"answer": "6"}, dataset_name=dataset.name,
                                    split="test")
    assert by_name.metadata["dataset_split"] == ["test"]
    bulk = client.create_examples(
        dataset_id=dataset.id,
        examples=[{"inputs": {"question": f"{i}?"}, "outputs": {"answer": str(i)}, "split": ["train", "gold"]}
                  for i in range(3)],
    )
    assert bulk["count"] == 3 and len(bulk["example_ids"]) == 3
    assert client.read_dataset(dataset_id=dataset.id).example_count == 5

    listed = list(client.list_examples(dataset_id=dataset.id))
    assert len(listed) == 5 and listed[0].id == one.id, "in the order added"
    assert [e.id for e in client.list_examples(dataset_name=dataset.name, splits=["test"])] == [by_name.id]
    assert len(list(client.list_examples(dataset_id=dataset.id, splits=["gold"]))) == 3
    wanted = [str(i) for i in bulk["example_ids"][:2]]
    assert {str(e.id) for e in client.list_examples(example_ids=wanted)} == set(wanted)
    assert len(list(client.list_examples(dataset_id=dataset.id, limit=2))) == 2

    read = client.read_example(one.id)
    assert read.outputs == {"answer": "4"} and read.metadata["source"] == "manual"
    client.update_example(one.id, outputs={"answer": "four"}, metadata={"source": "reviewed"}, split="gold")
    updated = client.read_example(one.id)
    assert updated.outputs == {"answer": "four"} and updated.inputs == {"question": "2+2?"}
    assert updated.metadata == {"source": "reviewed", "dataset_split": ["gold"]}

    client.delete_example(one.id)
    with pytest.raises(LangSmithNotFoundError):
        client.read_example(one.id)
    with pytest.raises(LangSmithNotFoundError):
        client.create_example(inputs={"q": 1}, dataset_id=uuid.uuid4())
    assert client.read_dataset(dataset_id=dataset.id).example_count == 4


def test_an_example_from_a_traced_run(client, project):
    @traceable(run_type="chain", name="Answer")
    def answer(question):
        return {"output": f"answer to {question}"}

    with tracing_context(client=client, project_name=project, enabled=True):
        answer("why?")
    client.flush()
    run = wait_for(lambda: next(iter(client.list_runs(project_name=project)), None), timeout=30)
    dataset = client.create_dataset(f"runs-{uuid.uuid4().hex[:8]}")
    example = client.create_example(dataset_id=dataset.id, source_run_id=run.id, use_source_run_io=True)
    assert example.source_run_id == run.id
    assert example.inputs == {"question": "why?"} and example.outputs == {"output": "answer to why?"}
    # Given inputs and outputs win over nothing, and a missing run is a 404.
    kept = client.create_example(inputs={"q": "mine"}, outputs={"a": "mine"}, dataset_id=dataset.id, source_run_id=run.id)
    assert kept.inputs == {"q": "mine"} and kept.source_run_id == run.id
    with pytest.raises(LangSmithNotFoundError):
        client.create_example(dataset_id=dataset.id, source_run_id=uuid.uuid4(), use_source_run_io=True)
