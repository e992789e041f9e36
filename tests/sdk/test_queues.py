"""Annotation queues through the real LangSmith SDK, a reviewer working
through one, and a rule with all four actions in LangSmith's order."""

import uuid

import pytest
from langsmith import traceable, tracing_context
from langsmith.utils import LangSmithNotFoundError

from conftest import REPO, api, wait_for
from receiver import Receiver

WASM = REPO / "plugins" / "rust" / "target" / "wasm32-wasip2" / "release"


def traced(client, project, n):
    @traceable(run_type="chain", name="Answer")
    def answer(question):
        return {"output": f"answer to {question}"}

    with tracing_context(client=client, project_name=project, enabled=True):
        for i in range(n):
            answer(f"q{i}")
    client.flush()
    return wait_for(lambda: (r := list(client.list_runs(project_name=project))) and len(r) == n and r, timeout=60)



def test_queues_are_created_filled_and_worked_through(client, project, server):
    runs = traced(client, project, 3)
    queue = client.create_annotation_queue(name=f"review-{uuid.uuid4().hex[:6]}", description="look at these",
                                           rubric_instructions="is the answer right?")
    assert client.read_annotation_queue(queue.id).name == queue.name
    assert queue.id in {q.id for q in client.list_annotation_queues(name=queue.name)}
    assert [q.id for q in client.list_annotation_queues(queue_ids=[queue.id])] == [queue.id]
    with pytest.raises(LangSmithNotFoundError):
        client.read_annotation_queue(uuid.uuid4())

    client.add_runs_to_annotation_queue(queue.id, runs=[
        {"run_id": r.id, "session_id": r.session_id, "start_time": r.start_time} for r in runs[:2]])
    with pytest.warns(DeprecationWarning):
        client.add_runs_to_annotation_queue(queue.id, run_ids=[runs[1].id, runs[2].id])  # runs[1] stays once
    listed = list(client.list_runs_from_annotation_queue(queue.id))
    assert [r.id for r in listed] == [runs[0].id, runs[1].id, runs[2].id]
    assert all(r.added_at is not None and r.last_reviewed_time is None for r in listed)

    # A reviewer: the next run, feedback on it, done; then the next.
    first = client.get_run_from_annotation_queue(queue.id, index=0)
    assert first.id == runs[0].id and first.inputs == runs[0].inputs
    client.create_feedback(first.id, key="correctness", score=1)
    assert api(server, "PATCH", f"/annotation-queues/{queue.id}/runs/{first.id}", json={"done": True}).ok
    assert client.get_run_from_annotation_queue(queue.id, index=0).id == runs[1].id
    done = list(client.list_runs_from_annotation_queue(queue.id, status="completed"))
    assert [r.id for r in done] == [runs[0].id] and done[0].last_reviewed_time is not None
    client.delete_run_from_annotation_queue(queue.id, run_id=runs[1].id)
    assert client.get_run_from_annotation_queue(queue.id, index=0).id == runs[2].id
    with pytest.raises(LangSmithNotFoundError):
        client.get_run_from_annotation_queue(queue.id, index=1)
    with pytest.raises(LangSmithNotFoundError):
        client.add_runs_to_annotation_queue(uuid.uuid4(), runs=[
            {"run_id": runs[0].id, "session_id": runs[0].session_id, "start_time": runs[0].start_time}])


def test_a_rule_with_all_four_actions_in_langsmiths_order(client, project, server):
    if not (WASM / "output_score.wasm").exists():
        pytest.fail("plugins are not built: tests/run.sh builds them (plugins/build.sh)")
    queue = client.create_annotation_queue(name=f"rule-{uuid.uuid4().hex[:6]}")
    dataset = client.create_dataset(f"rule-{uuid.uuid4().hex[:6]}")
    receiver = Receiver()
    try:
        rule = {"display_name": "all four", "session_name": project, "batch_ms": 0,
                "add_to_annotation_queue_id": str(queue.id), "add_to_dataset_id": str(dataset.id),
                "webhooks": [{"url": receiver.url + "/hook"}],
                "plugins": {"evaluate": {"path": str(WASM / "output_score.wasm")}}}
        resp = api(server, "POST", "/runs/rules", json=rule)
        assert resp.status_code == 200, resp.text
        view = resp.json()
        assert view["add_to_annotation_queue_name"] == queue.name and view["add_to_dataset_name"] == dataset.name
        runs = traced(client, project, 2)
        wait_for(lambda: len([r for b in receiver.bodies() for r in b["runs"]]) == 2, timeout=120)
        # When the webhook was sent, queue and dataset already held the runs
        # (they commit together, before the delivery is queued) ...
        queued = {r.id for r in client.list_runs_from_annotation_queue(queue.id)}
        assert queued == {r.id for r in runs}
        examples = list(client.list_examples(dataset_id=dataset.id))
        assert {e.source_run_id for e in examples} == {r.id for r in runs}
        # ... and the webhook carried no evaluator feedback: it comes after.
        for body in receiver.bodies():
            assert "answer_usefulness" not in body["feedback_stats"]
        wait_for(lambda: len(list(client.list_feedback(run_ids=[r.id for r in runs], feedback_key=["answer_usefulness"]))) == 2,
                 timeout=60)
        logs = api(server, "GET", f"/runs/rules/{view['id']}/logs").json()
        for line in logs:
            for action in ("add_to_annotation_queue", "add_to_dataset", "evaluators"):
                assert line[action]["outcome"] == "success", line
    finally:
        receiver.close()
