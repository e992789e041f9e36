"""Plugins in every language, in real rules: the Python, JavaScript, C and Go
examples select the same runs and write the same feedback as the Rust
examples, traced by the real SDK, with the plugin defaults (deadline, memory)."""

import pathlib

import pytest
from langsmith import traceable, tracing_context

from conftest import REPO, wait_for
from receiver import Receiver
from test_rules import api, create_rule

RUST = REPO / "plugins" / "rust" / "target" / "wasm32-wasip2" / "release"
LANGUAGES = ["rust", "python", "js", "c", "go"]


def matcher_path(lang):
    return str(RUST / "llm_errors.wasm") if lang == "rust" else str(REPO / "plugins" / lang / "example" / "example.wasm")


def evaluator_path(lang):
    return str(RUST / "output_score.wasm") if lang == "rust" else matcher_path(lang)


@pytest.fixture(scope="module", autouse=True)
def built_examples():
    for lang in LANGUAGES:
        assert pathlib.Path(evaluator_path(lang)).is_file(), f"{lang} example not built: run plugins/build.sh"


def trace(client, project):
    @traceable(run_type="llm", name="ChatModel")
    def llm(prompt, fail):
        if fail:
            raise RuntimeError(fail)
        return {"output": f"answer to {prompt}"}

    @traceable(run_type="chain", name="Answer")
    def answer(question, text):
        return {"output": text}

    with tracing_context(client=client, project_name=project, enabled=True):
        for i, fail in enumerate([None, "RateLimitError: rate limit reached", None, "Timeout after 30s",
                                  "APIConnectionError: connection reset"]):
            try:
                llm(f"p{i}", fail)
            except RuntimeError:
                pass
        for text in ["Paris is the capital of France.", "I don't know.", "x" * 450, "", "Généré: ünïcödé ✓"]:
            answer("q", text)
    client.flush()


def test_every_language_selects_and_scores_like_rust(server, client, project):
    receivers = {lang: Receiver() for lang in LANGUAGES}
    try:
        rules = []
        for lang in LANGUAGES:
            rules += [create_rule(server, {
                "display_name": f"match {lang}", "session_name": project, "interval_seconds": 1,
                "plugins": {"match": {"path": matcher_path(lang), "config": {"error_contains": "rate limit"}}},
                "webhooks": [{"url": receivers[lang].url + "/" + lang}],
            }), create_rule(server, {
                "display_name": f"evaluate {lang}", "session_name": project, "interval_seconds": 1,
                "filter": 'eq(run_type, "chain")',
                "plugins": {"evaluate": {"path": evaluator_path(lang),
                                         "config": {"key": f"usefulness_{lang}", "target_chars": 100}}},
            })]

        # A rule's first cycle waits for its plugins to compile (a Python or
        # JavaScript guest takes seconds, minutes on a loaded machine), then
        # is recorded: once every rule has one, the runs are traced. The
        # bound is for a stuck server, not a timing.
        def compiled(rule):
            cycles = api(server, "GET", f"/runs/rules/{rule['id']}/cycles").json()
            assert not any(c["error"] for c in cycles), cycles
            return len(cycles) > 0

        wait_for(lambda: all(compiled(r) for r in rules), timeout=900)
        trace(client, project)

        def delivered(lang):
            return {run["id"] for body in receivers[lang].bodies() for run in body["runs"]}

        wait_for(lambda: all(delivered(lang) for lang in LANGUAGES), timeout=60)
        selected = {lang: delivered(lang) for lang in LANGUAGES}
        assert len(selected["rust"]) == 1, "one llm run failed with a rate limit"
        for lang in LANGUAGES:
            assert selected[lang] == selected["rust"], f"{lang} selected other runs"

        def scores(lang):
            found = api(server, "GET", "/feedback", params={"key": f"usefulness_{lang}", "limit": 100}).json()
            return {f["run_id"]: (f["score"], f["comment"]) for f in found}

        wait_for(lambda: all(len(scores(lang)) == 5 for lang in LANGUAGES), timeout=60)
        rust = scores("rust")
        assert sorted(s for s, _ in rust.values()) == [0.0, 0.0, 0.17, 0.31, 1.0]
        for lang in LANGUAGES:
            assert scores(lang) == rust, f"{lang} scored differently"
    finally:
        for r in receivers.values():
            r.close()
