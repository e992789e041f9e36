"""The receiver from LangSmith's webhook page, pointed at runhook.

The doc deploys it on Modal; here it is a plain HTTP server whose handler
is the doc's function body, unchanged: it checks the `secret` query
parameter, reads the runs' feedback with `Client().list_feedback`, and
turns each correction into an example with `Client().create_example`.
`Client()` finds runhook through LANGSMITH_ENDPOINT and LANGSMITH_API_KEY,
as it would find LangSmith.
"""

import json
import os
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import requests
from langsmith import traceable, tracing_context

from conftest import API_KEY, wait_for

SECRET = "38ee77617c3a489ab6e871fbeb2ec87d"


def f(data: dict, secret: str):
    """The doc's function, minus Modal's decorators and FastAPI's types."""
    from langsmith import Client

    if secret != os.environ["LS_WEBHOOK"]:
        raise PermissionError("Incorrect bearer token")

    ls_client = Client()
    runs = data["runs"]
    ids = [r["id"] for r in runs]
    feedback = list(ls_client.list_feedback(run_ids=ids))
    for r, f in zip(runs, feedback):
        try:
            ls_client.create_example(
                inputs=r["inputs"],
                outputs={"output": f.correction},
                dataset_name="classifier-github-issues",
            )
        except Exception:
            raise ValueError(f"{r} and {f}")
    return "success!"


class DocReceiver:
    def __init__(self):
        self.errors = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))))
                secret = parse_qs(urlparse(self.path).query).get("secret", [""])[0]
                try:
                    f(body, secret)
                    status = 200
                except PermissionError:
                    status = 401
                except Exception as e:  # what Modal would answer: a 500
                    outer.errors.append(repr(e))
                    status = 500
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()


def test_the_docs_receiver_turns_corrections_into_examples(server, client, project, monkeypatch):
    monkeypatch.setenv("LANGSMITH_ENDPOINT", server.url)
    monkeypatch.setenv("LANGSMITH_API_KEY", API_KEY)
    monkeypatch.setenv("LS_WEBHOOK", SECRET)
    dataset_name = "classifier-github-issues"
    if not client.has_dataset(dataset_name=dataset_name):
        client.create_dataset(dataset_name)
    before = len(list(client.list_examples(dataset_name=dataset_name)))
    receiver = DocReceiver()
    try:
        rule = {"display_name": "corrections to examples", "session_name": project, "batch_ms": 0,
                "filter": 'eq(feedback_key, "correction")',
                "webhooks": [{"url": f"{receiver.url}/?secret={SECRET}"}]}
        resp = requests.post(server.url + "/api/v1/runs/rules", json=rule, headers={"x-api-key": API_KEY}, timeout=30)
        assert resp.status_code == 200, resp.text

        @traceable(run_type="chain", name="Classify")
        def classify(issue):
            return {"label": "feature"}

        issues = [f"issue {uuid.uuid4().hex[:6]}" for _ in range(3)]
        with tracing_context(client=client, project_name=project, enabled=True):
            for issue in issues:
                classify(issue)
        client.flush()
        runs = wait_for(lambda: (r := list(client.list_runs(project_name=project))) and len(r) == 3 and r, timeout=60)
        # A reviewer corrects two of the three labels.
        corrected = {str(r.id): label for r, label in zip(runs[:2], ["bug", "question"])}
        for run_id, label in corrected.items():
            client.create_feedback(run_id, key="correction", correction=label)

        def made():
            examples = list(client.list_examples(dataset_name=dataset_name))
            return len(examples) == before + 2 and examples

        examples = wait_for(made, timeout=120)
        new = {json.dumps(e.inputs, sort_keys=True): e.outputs for e in examples[before:]}
        by_run = {str(r.id): json.dumps(r.inputs, sort_keys=True) for r in runs}
        for run_id, label in corrected.items():
            assert new[by_run[run_id]] == {"output": label}
        assert receiver.errors == []
    finally:
        receiver.close()
