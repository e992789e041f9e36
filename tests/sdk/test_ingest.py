"""Tracing into runhook with the real LangSmith SDK, and reading it back
through the SDK's own read calls."""


import pytest
from langsmith import Client, traceable, tracing_context
from langsmith.schemas import Attachment

from conftest import API_KEY, wait_for


def trace_nested(client, project):
    """A chain calling a tool, a failing LLM call and a good one."""

    @traceable(run_type="tool", name="lookup")
    def lookup(city):
        return {"weather": f"sunny in {city}"}

    @traceable(run_type="llm", name="ChatModel", tags=["gpt-4o"], metadata={"ls_model_name": "gpt-4o"})
    def llm(prompt):
        if prompt == "fail":
            raise ValueError("rate limit reached")
        return {"output": f"answer to {prompt}", "usage_metadata": {"input_tokens": 7, "output_tokens": 5}}

    @traceable(run_type="chain", name="Agent", tags=["prod"], metadata={"user_id": "u-1", "thread_id": "t-9"})
    def agent(question):
        lookup("Tokyo")
        try:
            llm("fail")
        except ValueError:
            pass
        return llm(question)

    with tracing_context(client=client, project_name=project, enabled=True):
        agent("visa?")
    client.flush()


def runs_of(client, project, **kw):
    return list(client.list_runs(project_name=project, **kw))


def test_nested_traceable_lands_over_zstd_multipart(server, client, project):
    trace_nested(client, project)
    runs = wait_for(lambda: len(runs_of(client, project)) == 4 and runs_of(client, project))
    by_name = {}
    for r in runs:
        by_name.setdefault(r.name, []).append(r)
    root = by_name["Agent"][0]
    assert root.parent_run_id is None and root.status == "success"
    assert root.outputs == {"output": "answer to visa?", "usage_metadata": {"input_tokens": 7, "output_tokens": 5}}
    assert root.tags == ["prod"]
    assert root.extra["metadata"]["user_id"] == "u-1"
    assert {r.trace_id for r in runs} == {root.id}
    children = [r for r in runs if r.id != root.id]
    assert all(r.parent_run_id == root.id for r in children)
    assert all(r.parent_run_ids == [root.id] for r in children)
    failed = [r for r in by_name["ChatModel"] if r.status == "error"]
    assert len(failed) == 1 and "rate limit reached" in failed[0].error
    ok = [r for r in by_name["ChatModel"] if r.status == "success"][0]
    assert (ok.prompt_tokens, ok.completion_tokens, ok.total_tokens) == (7, 5, 12)
    assert ok.extra["metadata"]["ls_model_name"] == "gpt-4o"
    # The SDK took the compressed multipart path.
    assert 'path="/runs/multipart" encoding="zstd"' in server.log_text()


def test_batch_path_when_info_turns_multipart_off(server, project):
    info = {
        "version": "0.10.0",
        "batch_ingest_config": {
            "use_multipart_endpoint": False,
            "scale_up_qsize_trigger": 1000,
            "scale_up_nthreads_limit": 16,
            "scale_down_nempty_trigger": 4,
            "size_limit": 100,
            "size_limit_bytes": 20971520,
        },
    }
    client = Client(api_url=server.url, api_key=API_KEY, info=info)
    before = server.log_text().count('path="/runs/batch"')
    trace_nested(client, project)
    runs = wait_for(lambda: len(runs_of(client, project)) == 4 and runs_of(client, project))
    assert sorted(r.status for r in runs) == ["error", "success", "success", "success"]
    assert server.log_text().count('path="/runs/batch"') > before


def test_direct_post_and_patch_without_auto_batching(server, project):
    client = Client(api_url=server.url, api_key=API_KEY, auto_batch_tracing=False)
    before = server.log_text().count('path="/runs" ')
    trace_nested(client, project)
    runs = runs_of(client, project)
    assert len(runs) == 4
    assert all(r.end_time is not None for r in runs)
    # Four synchronous POST /runs, each followed by a PATCH /runs/{id}.
    assert server.log_text().count('path="/runs" ') - before == 4
    root = [r for r in runs if r.parent_run_id is None][0]
    assert root.outputs["output"] == "answer to visa?"


def test_read_run_and_list_by_trace(client, project):
    trace_nested(client, project)
    root = wait_for(lambda: [r for r in runs_of(client, project, is_root=True)])[0]
    full = client.read_run(root.id)
    assert full.name == "Agent" and full.trace_id == root.id
    assert full.inputs == {"question": "visa?"}
    in_trace = list(client.list_runs(trace_id=root.id))
    assert len(in_trace) == 4
    llms = runs_of(client, project, run_type="llm")
    assert len(llms) == 2 and {r.run_type for r in llms} == {"llm"}
    errored = runs_of(client, project, error=True)
    assert [r.name for r in errored] == ["ChatModel"]
    children = list(client.list_runs(parent_run_id=root.id))
    assert len(children) == 3


def test_feedback_create_list_and_stats(client, project):
    trace_nested(client, project)
    root = wait_for(lambda: [r for r in runs_of(client, project, is_root=True)])[0]
    fb = client.create_feedback(run_id=root.id, key="answer_usefulness", score=0.25, comment="too short")
    client.create_feedback(run_id=root.id, key="category", value="CONCEPTUAL")
    listed = wait_for(lambda: list(client.list_feedback(run_ids=[root.id])) if len(list(client.list_feedback(run_ids=[root.id]))) == 2 else None)
    assert {(f.key, f.score, f.value) for f in listed} == {("answer_usefulness", 0.25, None), ("category", None, "CONCEPTUAL")}
    only = list(client.list_feedback(run_ids=[root.id], feedback_key=["category"]))
    assert [f.key for f in only] == ["category"]
    assert any(f.id == fb.id and f.comment == "too short" for f in listed)
    stats = client.read_run(root.id).feedback_stats
    assert stats["answer_usefulness"]["n"] == 1 and stats["answer_usefulness"]["avg"] == 0.25
    assert stats["category"]["values"] == {"CONCEPTUAL": 1}


def test_pagination_over_many_runs(client, project):
    @traceable(run_type="tool")
    def step(i):
        return {"i": i}

    with tracing_context(client=client, project_name=project, enabled=True):
        for i in range(230):
            step(i)
    client.flush()
    runs = wait_for(lambda: (lambda rs: rs if len(rs) == 230 else None)(runs_of(client, project)))
    assert len({r.id for r in runs}) == 230
    starts = [r.start_time for r in runs]
    assert starts == sorted(starts, reverse=True)


def test_attachments_round_trip(client, project):
    @traceable(run_type="tool", dangerously_allow_filesystem=False)
    def with_file(question, image: Attachment):
        return {"ok": True}

    with tracing_context(client=client, project_name=project, enabled=True):
        with_file("what is this?", Attachment(mime_type="image/png", data=b"\x89PNG fake bytes"))
    client.flush()
    run = wait_for(lambda: runs_of(client, project))[0]
    full = client.read_run(run.id)
    assert "image" in full.attachments
    assert full.attachments["image"]["reader"].read() == b"\x89PNG fake bytes"
    assert full.attachments["image"]["mime_type"] == "image/png"


def test_the_api_key_is_required(server, project):
    bad = Client(api_url=server.url, api_key="wrong_key_0123456789")
    with pytest.raises(Exception) as err:
        bad.read_project(project_name="anything")
    assert "401" in str(err.value) or "nauthorized" in str(err.value)
