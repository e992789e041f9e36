"""The filter language through the SDK's list_runs(filter=..., trace_filter=..., tree_filter=...)."""

import pytest
from langsmith import traceable, tracing_context
from langsmith.utils import LangSmithError

from conftest import wait_for


def trace_app(client, project):
    @traceable(run_type="retriever", name="RetrieveDocs")
    def retrieve(q):
        return {"documents": [{"page_content": f"doc about {q}"}]}

    @traceable(run_type="chain", name="ExpandQuery")
    def expand(q):
        return {"query": q + " expanded"}

    @traceable(run_type="llm", name="ChatOpenAI", metadata={"environment": "production"})
    def llm(q, fail=False):
        if fail:
            raise RuntimeError("RateLimitError")
        return {"output": f"answer: {q}"}

    @traceable(run_type="chain", name="QA", tags=["beta"])
    def qa(q, use_expand=False, fail=False):
        if use_expand:
            expand(q)
        retrieve(q)
        try:
            return llm(q, fail=fail)
        except RuntimeError:
            return {"output": None}

    with tracing_context(client=client, project_name=project, enabled=True):
        qa("visa", use_expand=True)
        qa("weather", fail=True)
        qa("trains")
    client.flush()
    wait_for(lambda: len(list(client.list_runs(project_name=project))) == 10)


def names(client, project, **kw):
    return sorted(r.name for r in client.list_runs(project_name=project, **kw))


def test_filters_select_exactly_the_expected_runs(client, project):
    trace_app(client, project)
    assert names(client, project, filter='and(eq(run_type, "llm"), neq(error, null))') == ["ChatOpenAI"]
    assert names(client, project, filter='eq(name, "ChatOpenAI") and status = "success"') == ["ChatOpenAI", "ChatOpenAI"]
    # The SDK gives child runs their parent's tags.
    assert len(names(client, project, filter='has(tags, "beta")')) == 10
    assert names(client, project, filter='has(tags, "beta") and eq(is_root, true)') == ["QA", "QA", "QA"]
    assert names(client, project, filter="and(eq(metadata_key, 'environment'), eq(metadata_value, 'production'))") == ["ChatOpenAI"] * 3
    assert names(client, project, filter='search("weather")') == ["ChatOpenAI", "QA", "RetrieveDocs"]
    assert names(client, project, filter="and(eq(input_key, 'q'), like(input_value, 'vi%'))") == ["ChatOpenAI", "ExpandQuery", "QA", "RetrieveDocs"]
    # trace_filter: the root must match; tree_filter: some run of the trace.
    assert names(client, project, filter='eq(name, "RetrieveDocs")', tree_filter='eq(name, "ExpandQuery")') == ["RetrieveDocs"]
    visa_llm = list(client.list_runs(project_name=project, filter='eq(run_type, "llm")', trace_filter='search("visa")'))
    assert [r.inputs["q"] for r in visa_llm] == ["visa"]


def test_feedback_filters_see_new_feedback(client, project):
    trace_app(client, project)
    roots = list(client.list_runs(project_name=project, is_root=True))
    client.create_feedback(run_id=roots[0].id, key="answer_usefulness", score=0.2)
    client.create_feedback(run_id=roots[1].id, key="answer_usefulness", score=0.9)
    low = list(client.list_runs(project_name=project, filter='has(feedback_key, "answer_usefulness") and feedback_score < 0.5'))
    assert [r.id for r in low] == [roots[0].id]
    with_key = list(client.list_runs(project_name=project, filter='eq(feedback_key, "answer_usefulness")'))
    assert {r.id for r in with_key} == {roots[0].id, roots[1].id}


def test_filter_paging_returns_every_match_once(client, project):
    @traceable(run_type="tool")
    def step(i):
        return {"i": i}

    with tracing_context(client=client, project_name=project, enabled=True):
        for i in range(260):
            step(i)
    client.flush()
    wait_for(lambda: len(list(client.list_runs(project_name=project))) == 260)
    odd = list(client.list_runs(project_name=project, filter="and(eq(output_key, 'i'), gte(output_value, 100))"))
    assert len(odd) == 160 and len({r.id for r in odd}) == 160


def test_invalid_filter_is_a_400_with_the_message(client, project):
    with pytest.raises(LangSmithError) as err:
        list(client.list_runs(filter='and(eq(name, "a") eq(name, "b"))'))
    text = str(err.value)
    assert "400" in text and "of and(...), found" in text
