"""Automation rules end to end: the real SDK traces, rules run in the real
binary, a real receiver gets the webhooks."""

import subprocess
import time

import pytest
from langsmith import traceable, tracing_context

from conftest import API_KEY, REPO, Server, api, wait_for
from receiver import Receiver

WASM = REPO / "plugins" / "rust" / "target" / "wasm32-wasip2" / "release"


@pytest.fixture(scope="module", autouse=True)
def built_plugins():
    if not (WASM / "output_score.wasm").exists() or not (WASM / "hostile.wasm").exists():
        subprocess.run([str(REPO / "plugins" / "build.sh")], check=True, capture_output=True)




def create_rule(server, body):
    resp = api(server, "POST", "/runs/rules", json=body)
    assert resp.status_code == 200, resp.text
    return resp.json()


def trace_answers(client, project, answers):
    @traceable(run_type="chain", name="Answer")
    def answer(question, text):
        return {"output": text}

    with tracing_context(client=client, project_name=project, enabled=True):
        for i, text in enumerate(answers):
            answer(f"q{i}", text)
    client.flush()


DOC_RUN_KEYS = {
    "status", "is_root", "trace_id", "dotted_order", "run_type", "modified_at", "tenant_id", "end_time", "name",
    "start_time", "id", "session_id", "parent_run_ids", "child_run_ids", "direct_child_run_ids", "total_tokens",
    "completion_tokens", "prompt_tokens", "total_cost", "completion_cost", "prompt_cost", "first_token_time",
    "app_path", "in_dataset", "last_queued_at", "inputs", "inputs_s3_urls", "outputs", "outputs_s3_urls", "extra",
    "events", "feedback_stats", "serialized", "share_token",
    # runhook's additions: what receivers filter on.
    "error", "tags",
}


def test_evaluations_complete_before_the_webhook_fires(server, client, project, receiver):
    """The LangSmith doc's scenario: an evaluator rule scores runs; a second
    rule with a feedback filter sends only the runs scored below 0.5, once
    each, after they were scored."""
    evaluator = create_rule(server, {
        "display_name": "usefulness evaluator",
        "session_name": project,
        "interval_seconds": 1,
        "plugins": {"evaluate": {"path": str(WASM / "output_score.wasm"), "config": {"key": "answer_usefulness", "target_chars": 100}}},
    })
    webhook = create_rule(server, {
        "display_name": "low usefulness to webhook",
        "session_name": project,
        "interval_seconds": 1,
        "filter": 'has(feedback_key, "answer_usefulness") and feedback_score < 0.5',
        "webhooks": [{"url": receiver.url + "/hook?secret=s3cr3t", "headers": {"x-team": "ml"}}],
    })
    assert webhook["webhooks"][0]["url"].endswith("?secret=***") and webhook["webhooks"][0]["headers"] == {"x-team": "***"}
    long_answer = "A detailed answer " * 10
    trace_answers(client, project, ["I don't know", long_answer, "short", long_answer])

    def low_runs():
        return [r for b in receiver.bodies() for r in b["runs"]]

    sent = wait_for(lambda: len(low_runs()) >= 2 and low_runs(), timeout=30)
    time.sleep(3)  # further cycles must not send anything again
    sent = low_runs()
    assert sorted(r["outputs"]["output"] for r in sent) == ["I don't know", "short"]
    assert len({r["id"] for r in sent}) == 2, "each run once"
    # Only after scoring: the payload carries the score.
    for body in receiver.bodies():
        assert set(body) == {"rule_id", "start_time", "end_time", "runs", "feedback_stats"}
        assert body["rule_id"] == webhook["id"]
        assert body["start_time"].endswith("+00:00") and body["end_time"].endswith("+00:00")
        assert body["feedback_stats"]["answer_usefulness"]["n"] >= 1
        assert body["feedback_stats"]["answer_usefulness"]["avg"] < 0.5
        for run in body["runs"]:
            assert set(run) == DOC_RUN_KEYS
            assert not run["start_time"].endswith("+00:00") and "T" in run["start_time"]
            assert run["feedback_stats"]["answer_usefulness"]["avg"] < 0.5
    req = receiver.requests[0]
    assert req["path"] == "/hook?secret=s3cr3t" and req["headers"]["x-team"] == "ml" and req["headers"]["webhook-id"]
    # The evaluator's log shows four successes; the webhook rule's two deliveries.
    logs = wait_for(lambda: (lambda l: l if len(l) == 4 else None)(api(server, "GET", f"/runs/rules/{evaluator['id']}/logs").json()))
    assert all(l["evaluators"]["outcome"] == "success" for l in logs)
    hook_logs = wait_for(lambda: (lambda l: l if all(x["webhooks"]["outcome"] == "success" for x in l) and len(l) == 2 else None)(
        api(server, "GET", f"/runs/rules/{webhook['id']}/logs").json()))
    assert {l["run_id"] for l in hook_logs} == {r["id"] for r in sent}
    assert api(server, "GET", f"/runs/rules/{webhook['id']}/last_applied").status_code == 200


def test_sampling_rates(server, client, project, receiver):
    rules = {}
    for rate in (0.0, 0.5, 1.0):
        rules[rate] = create_rule(server, {
            "display_name": f"rate {rate}", "session_name": project, "interval_seconds": 1, "sampling_rate": rate,
            "webhooks": [{"url": f"{receiver.url}/rate/{rate}"}], "max_runs_per_payload": 1000,
        })
    trace_answers(client, project, [f"answer {i}" for i in range(200)])

    def count(rate):
        return sum(len(r["body"]["runs"]) for r in receiver.requests if r["path"] == f"/rate/{rate}")

    wait_for(lambda: count(1.0) == 200, timeout=30)
    time.sleep(2.5)
    assert count(0.0) == 0
    assert 70 <= count(0.5) <= 130
    half = {r["id"] for q in receiver.requests if q["path"] == "/rate/0.5" for r in q["body"]["runs"]}
    # Stable: re-triggering changes nothing.
    api(server, "POST", f"/runs/rules/{rules[0.5]['id']}/trigger")
    time.sleep(1.5)
    assert {r["id"] for q in receiver.requests if q["path"] == "/rate/0.5" for r in q["body"]["runs"]} == half


def test_patched_runs_are_not_sent_twice_and_rules_are_independent(server, client, project, receiver):
    a = create_rule(server, {"display_name": "a", "session_name": project, "interval_seconds": 1, "webhooks": [{"url": receiver.url + "/a"}]})
    create_rule(server, {"display_name": "b", "session_name": project, "interval_seconds": 1, "webhooks": [{"url": receiver.url + "/b"}],
                         "filter": 'eq(name, "Answer")'})
    trace_answers(client, project, ["one", "two"])
    wait_for(lambda: sum(len(r["body"]["runs"]) for r in receiver.requests if r["path"] == "/b") == 2, timeout=30)
    wait_for(lambda: sum(len(r["body"]["runs"]) for r in receiver.requests if r["path"] == "/a") == 2, timeout=30)
    run = list(client.list_runs(project_name=project))[0]
    # Feedback bumps the run's change sequence; it re-enters the window...
    client.create_feedback(run_id=run.id, key="note", score=1)
    time.sleep(3)
    # ...but neither rule sends it again.
    assert sum(len(r["body"]["runs"]) for r in receiver.requests if r["path"] == "/a") == 2
    assert sum(len(r["body"]["runs"]) for r in receiver.requests if r["path"] == "/b") == 2
    assert len(api(server, "GET", f"/runs/rules/{a['id']}/logs").json()) == 2


def test_a_trapping_plugin_is_logged_and_the_rule_goes_on(server, client, project, receiver):
    rule = create_rule(server, {
        "display_name": "trapping matcher", "session_name": project, "interval_seconds": 1,
        "plugins": {"match": {"path": str(WASM / "hostile.wasm"), "config": "trap"}},
        "webhooks": [{"url": receiver.url + "/never"}],
    })
    trace_answers(client, project, ["x"])
    logs = wait_for(lambda: api(server, "GET", f"/runs/rules/{rule['id']}/logs").json(), timeout=30)
    assert logs[0]["webhooks"]["outcome"] == "error" and "trapped" in logs[0]["webhooks"]["payload"]["error"]
    # The next cycle still runs: a new run is picked up (and fails the same way).
    trace_answers(client, project, ["y"])
    wait_for(lambda: len(api(server, "GET", f"/runs/rules/{rule['id']}/logs").json()) == 2, timeout=30)
    assert receiver.requests == []


def test_rules_api_changes_take_effect_without_restart(server, client, project, receiver):
    rule = create_rule(server, {"display_name": "changing", "session_name": project, "interval_seconds": 1,
                                "filter": 'eq(name, "nothing")', "webhooks": [{"url": receiver.url + "/c"}]})
    trace_answers(client, project, ["first"])
    time.sleep(2.5)
    assert receiver.requests == []
    resp = api(server, "PATCH", f"/runs/rules/{rule['id']}", json={"filter": 'eq(name, "Answer")'})
    assert resp.status_code == 200, resp.text
    trace_answers(client, project, ["second"])
    wait_for(lambda: len(receiver.requests) >= 1, timeout=30)
    assert [r["outputs"]["output"] for b in receiver.bodies() for r in b["runs"]] == ["second"]
    assert api(server, "DELETE", f"/runs/rules/{rule['id']}").status_code == 200
    n = len(receiver.requests)
    trace_answers(client, project, ["third"])
    time.sleep(2.5)
    assert len(receiver.requests) == n
    assert api(server, "GET", f"/runs/rules/{rule['id']}").status_code == 404


@pytest.mark.parametrize("body, needle", [
    ({"session_name": "p", "webhooks": [{"url": "http://x/"}]}, "display_name is required"),
    ({"display_name": "r", "webhooks": [{"url": "http://x/"}]}, "session_id or session_name"),
    ({"display_name": "r", "session_name": "p", "filter": "eq(nam, 'x')", "webhooks": [{"url": "http://x/"}]}, "unknown field"),
    ({"display_name": "r", "session_name": "p", "webhooks": [{"url": "ftp://x/"}]}, "webhooks[0].url"),
    ({"display_name": "r", "session_name": "p", "sampling_rate": 2, "webhooks": [{"url": "http://x/"}]}, "sampling_rate"),
    ({"display_name": "r", "session_name": "p"}, "needs an action"),
    ({"display_name": "r", "session_name": "p", "interval_seconds": 0, "webhooks": [{"url": "http://x/"}]}, "interval_seconds"),
    ({"display_name": "r", "session_name": "p", "webhooks": [{"url": "http://x/"}], "code_evaluators": [{"code": "x"}]}, "code_evaluators is not supported"),
    ({"display_name": "r", "session_name": "p", "webhooks": [{"url": "http://x/"}], "alerts": [{"type": "pagerduty"}]}, "routing_key"),
    ({"display_name": "r", "session_name": "p", "webhooks": [{"url": "http://x/"}], "colour": "red"}, "unknown rule field"),
    ({"display_name": "r", "session_name": "p", "webhooks": [{"url": "http://x/"}], "signing_secret": "nope"}, "signing_secret"),
    ({"display_name": "r", "session_name": "p", "webhooks": [{"url": "http://x/", "headers": {"Host": "internal"}}]},
     "webhooks[0].headers.Host: a rule cannot set this header"),
    ({"display_name": "r", "session_name": "p", "webhooks": [{"url": "http://x/", "headers": {"Webhook-Signature": "v1,x"}}]},
     "webhooks[0].headers.Webhook-Signature: a rule cannot set this header: runhook sets it"),
    ({"display_name": "r", "session_name": "p", "webhooks": [{"url": "http://x/", "headers": {"x-big": "v" * 4097}}]},
     "at most 4096 bytes"),
    ({"display_name": "r", "session_name": "p",
      "webhooks": [{"url": "http://x/", "headers": {f"x-h{i}": "v" for i in range(33)}}]}, "at most 32 custom headers"),
    ({"display_name": "r", "session_name": "p", "plugins": {"evaluate": {"path": "/nonexistent.wasm"}}}, "plugins.evaluate"),
    ({"display_name": "r", "session_name": "p", "webhooks": [{"url": "http://x/"}],
      "plugins": {"match": {"path": str(WASM / "output_score.wasm")}}}, "does not export runhook:plugin/matcher"),
])
def test_invalid_rules_are_refused_with_a_message(server, body, needle):
    resp = api(server, "POST", "/runs/rules", json=body)
    assert resp.status_code == 400, resp.text
    assert needle in resp.json()["detail"]


def test_rules_from_the_config_file(tmp_path, receiver):
    """[[rules]] in the TOML file are applied at start, kept stable across
    restarts, and a bad one stops the start with a message naming it."""
    config = tmp_path / "runhook.toml"
    config.write_text(f'''
[[rules]]
display_name = "errors to webhook"
session_name = "from-config"
interval_seconds = 1
filter = 'eq(status, "error")'
webhooks = [{{ url = "{receiver.url}/cfg" }}]
''')
    data = tmp_path / "data"
    server = Server(data, env={"RUNHOOK_CONFIG": str(config)})
    try:
        from langsmith import Client
        client = Client(api_url=server.url, api_key=API_KEY, auto_batch_tracing=False)

        @traceable(run_type="tool", name="flaky")
        def flaky(ok):
            if not ok:
                raise ValueError("boom")
            return {"ok": True}

        with tracing_context(client=client, project_name="from-config", enabled=True):
            flaky(True)
            try:
                flaky(False)
            except ValueError:
                pass
        wait_for(lambda: len(receiver.requests) == 1, timeout=30)
        assert [r["status"] for r in receiver.requests[0]["body"]["runs"]] == ["error"]
        rules = api(server, "GET", "/runs/rules").json()
        assert [r["display_name"] for r in rules] == ["errors to webhook"]
    finally:
        server.stop()
    # Same id after a restart: no second rule.
    server = Server(data, env={"RUNHOOK_CONFIG": str(config)})
    try:
        assert len(api(server, "GET", "/runs/rules").json()) == 1
    finally:
        server.stop()
    config.write_text('[[rules]]\ndisplay_name = "broken"\nsession_name = "x"\nfilter = "eq(nam, 1)"\nwebhooks = [{ url = "http://h/" }]\n')
    with pytest.raises(RuntimeError) as err:
        Server(tmp_path / "data2", env={"RUNHOOK_CONFIG": str(config)})
    assert "rules[0] (broken)" in str(err.value) and "unknown field" in str(err.value)


def test_alerts_from_the_config_file(tmp_path, receiver):
    """[[alerts]] in the TOML file are applied at start, updated in place when
    they change (same id, state kept), and a bad one stops the start naming it."""
    config = tmp_path / "runhook.toml"
    alert = '''
[[alerts]]
display_name = "traffic"
session_name = "from-config"
metric = {{ kind = "run_count" }}
window_minutes = 5
condition = "below"
critical = {critical}
webhooks = [{{ url = "{url}/alert" }}]
'''
    config.write_text(alert.format(critical=1, url=receiver.url))
    data = tmp_path / "data"
    server = Server(data, env={"RUNHOOK_CONFIG": str(config)})
    try:
        alerts = api(server, "GET", "/alerts").json()
        assert [(a["display_name"], a["critical"], a["condition"]) for a in alerts] == [("traffic", 1.0, "below")]
        first = alerts[0]["id"]
        # No run in five minutes is below 1: critical, notified.
        wait_for(lambda: len(receiver.requests) == 1, timeout=60)
        assert receiver.requests[0]["body"]["event"] == "triggered"
    finally:
        server.stop()
    config.write_text(alert.format(critical=0.5, url=receiver.url))
    server = Server(data, env={"RUNHOOK_CONFIG": str(config)})
    try:
        alerts = api(server, "GET", "/alerts").json()
        assert [(a["id"], a["critical"]) for a in alerts] == [(first, 0.5)], "updated in place"
        assert alerts[0]["state"]["level"] == "critical", "its state kept"
    finally:
        server.stop()
    config.write_text(alert.format(critical=1, url=receiver.url).replace("window_minutes = 5", "window_minutes = 0"))
    with pytest.raises(RuntimeError) as err:
        Server(tmp_path / "data2", env={"RUNHOOK_CONFIG": str(config)})
    assert "alerts[0] (traffic)" in str(err.value) and "window_minutes" in str(err.value)


def test_a_run_patched_after_it_was_sent_is_not_sent_again(server, client, project, receiver):
    create_rule(server, {"display_name": "once", "session_name": project, "interval_seconds": 1,
                         "webhooks": [{"url": receiver.url + "/once"}]})
    trace_answers(client, project, ["original"])
    wait_for(lambda: len(receiver.requests) == 1, timeout=30)
    run = list(client.list_runs(project_name=project))[0]
    resp = api(server, "PATCH", f"/runs/{run.id}", json={"outputs": {"output": "patched"}, "end_time": run.end_time.isoformat()})
    assert resp.status_code == 200, resp.text
    assert client.read_run(run.id).outputs == {"output": "patched"}
    time.sleep(3)
    assert len(receiver.requests) == 1


def test_backfill_processes_history_once(server, client, project, receiver):
    trace_answers(client, project, ["old one", "old two"])
    wait_for(lambda: len(list(client.list_runs(project_name=project))) == 2)
    create_rule(server, {"display_name": "live only", "session_name": project, "interval_seconds": 1,
                         "webhooks": [{"url": receiver.url + "/live"}]})
    create_rule(server, {"display_name": "with backfill", "session_name": project, "interval_seconds": 1,
                         "backfill_from": "2020-01-01T00:00:00Z", "webhooks": [{"url": receiver.url + "/backfill"}]})
    trace_answers(client, project, ["new"])

    def outputs(path):
        return sorted(r["outputs"]["output"] for q in receiver.requests if q["path"] == path for r in q["body"]["runs"])

    wait_for(lambda: outputs("/backfill") == ["new", "old one", "old two"], timeout=30)
    wait_for(lambda: outputs("/live") == ["new"], timeout=30)
    time.sleep(2.5)
    assert outputs("/backfill") == ["new", "old one", "old two"]


def test_signed_webhooks_verify_with_the_standardwebhooks_package(server, client, project):
    """With a signing secret, every attempt carries Standard Webhooks headers
    that the reference verifier accepts, and a retry keeps the webhook-id."""
    import base64
    import os as _os

    from standardwebhooks.webhooks import Webhook

    secret = "whsec_" + base64.b64encode(_os.urandom(24)).decode()
    receiver = Receiver(status=lambda n: 500 if n == 1 else 200)  # the first attempt fails
    try:
        create_rule(server, {"display_name": "signed", "session_name": project, "interval_seconds": 1,
                             "signing_secret": secret, "webhooks": [{"url": receiver.url + "/signed"}]})
        trace_answers(client, project, ["signed answer"])
        wait_for(lambda: len(receiver.requests) == 2, timeout=30)
        verifier = Webhook(secret)
        ids = set()
        for req in receiver.requests:
            headers = {k.lower(): v for k, v in req["headers"].items()}
            payload = verifier.verify(req["raw"], headers)
            assert payload["runs"][0]["outputs"] == {"output": "signed answer"}
            ids.add(headers["webhook-id"])
        assert len(ids) == 1, "the retry keeps its webhook-id"
        # A tampered body fails verification.
        headers = {k.lower(): v for k, v in receiver.requests[1]["headers"].items()}
        with pytest.raises(Exception):
            verifier.verify(receiver.requests[1]["raw"] + b" ", headers)
    finally:
        receiver.close()


def test_a_rotated_signing_secret_verifies_with_either_secret_for_a_day(server, client, project):
    """After the secret changes, each webhook carries a signature by the new
    secret and one by the old, so receivers switch over without rejecting."""
    import base64
    import datetime
    import os as _os

    from standardwebhooks.webhooks import Webhook

    old, new = ("whsec_" + base64.b64encode(_os.urandom(24)).decode() for _ in range(2))
    receiver = Receiver()
    try:
        rule = create_rule(server, {"display_name": "rotated", "session_name": project, "interval_seconds": 1,
                                    "signing_secret": old, "webhooks": [{"url": receiver.url + "/rotated"}]})
        assert rule["retired_signing_secret_until"] is None
        trace_answers(client, project, ["before"])
        wait_for(lambda: len(receiver.requests) == 1, timeout=30)

        patched = api(server, "PATCH", f"/runs/rules/{rule['id']}", json={"signing_secret": new}).json()
        until = datetime.datetime.fromisoformat(patched["retired_signing_secret_until"].replace("Z", "+00:00"))
        hours = (until - datetime.datetime.now(datetime.timezone.utc)).total_seconds() / 3600
        assert 23.9 < hours <= 24, patched
        assert old not in str(patched) and new not in str(patched)
        # An unrelated change keeps the overlap as it was.
        renamed = api(server, "PATCH", f"/runs/rules/{rule['id']}", json={"display_name": "rotated 2"}).json()
        assert renamed["retired_signing_secret_until"] == patched["retired_signing_secret_until"]
        trace_answers(client, project, ["during"])
        wait_for(lambda: len(receiver.requests) == 2, timeout=30)
        req = receiver.requests[1]
        headers = {k.lower(): v for k, v in req["headers"].items()}
        assert len(headers["webhook-signature"].split(" ")) == 2
        for secret in (old, new):
            payload = Webhook(secret).verify(req["raw"], headers)
            assert payload["runs"][0]["outputs"] == {"output": "during"}
        # The first webhook, signed before the rotation, verifies with the old secret only.
        first = {k.lower(): v for k, v in receiver.requests[0]["headers"].items()}
        Webhook(old).verify(receiver.requests[0]["raw"], first)
        with pytest.raises(Exception):
            Webhook(new).verify(receiver.requests[0]["raw"], first)

        # Removing the secret stops signing at once.
        unsigned = api(server, "PATCH", f"/runs/rules/{rule['id']}", json={"signing_secret": None}).json()
        assert unsigned["has_signing_secret"] is False and unsigned["retired_signing_secret_until"] is None
        trace_answers(client, project, ["after"])
        wait_for(lambda: len(receiver.requests) == 3, timeout=30)
        assert "webhook-signature" not in {k.lower() for k in receiver.requests[2]["headers"]}
    finally:
        receiver.close()
