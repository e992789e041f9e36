"""Alerts in a message format, end to end: the real SDK traces failing LLM
calls, a saved alert on their error count notifies through the shipped
PagerDuty format, and a local receiver standing in for PagerDuty's Events
API gets a trigger and, once the runs leave the window, a resolve with the
same dedup_key. A rule's webhook in the Slack format gets Block Kit."""

from langsmith import traceable, tracing_context

from conftest import api, wait_for


def trace_failures(client, project, n):
    @traceable(run_type="llm", name="ChatModel")
    def call(prompt):
        raise RuntimeError("RateLimitError: slow down")

    with tracing_context(client=client, project_name=project, enabled=True):
        for i in range(n):
            try:
                call(f"prompt {i}")
            except RuntimeError:
                pass
    client.flush()


def test_an_alert_on_traced_runs_triggers_and_resolves_one_pagerduty_incident(server, client, project, receiver):
    body = {
        "display_name": "LLM errors",
        "session_name": project,
        "metric": {"kind": "error_count"},
        "filter": 'eq(run_type, "llm")',
        "window_minutes": 1,
        "warning": 0,
        "critical": 1,
        "evaluate_every_seconds": 10,
        "reminder_minutes": 0,
        "webhooks": [{
            "url": receiver.url + "/v2/enqueue",
            "format": {"builtin": "pagerduty", "config": {"routing_key": "R0UT1NGKEY", "base_url": server.url}},
        }],
    }
    missing = api(server, "POST", "/alerts", json={**body, "webhooks": [{"url": receiver.url, "format": "pagerduty"}]})
    assert missing.status_code == 400 and "webhooks[0].format.config.routing_key" in missing.json()["detail"]
    unknown = api(server, "POST", "/alerts", json={**body, "webhooks": [{"url": receiver.url, "format": "irc"}]})
    assert unknown.status_code == 400 and '"irc"' in unknown.json()["detail"]
    created = api(server, "POST", "/alerts", json=body)
    assert created.status_code == 200, created.text
    assert "R0UT1NGKEY" not in created.text, "the integration key is masked"
    assert created.json()["webhooks"][0]["format"]["config"]["routing_key"] == "***"
    alert_id = created.json()["id"]

    trace_failures(client, project, 2)
    wait_for(lambda: len(receiver.requests) >= 1, timeout=120)
    trigger = receiver.requests[0]["body"]
    assert trigger["routing_key"] == "R0UT1NGKEY"
    assert trigger["event_action"] == "trigger"
    assert trigger["payload"]["source"] == "runhook"
    assert trigger["payload"]["severity"] in ("warning", "critical")
    assert "LLM errors" in trigger["payload"]["summary"] and "error count" in trigger["payload"]["summary"]
    assert trigger["links"][0]["href"] == f"{server.url}/ui/alerts/{alert_id}"
    state = api(server, "GET", f"/alerts/{alert_id}").json()["state"]
    assert trigger["dedup_key"] == state["incident_key"]

    # Two errors within a minute pass warning (0) and critical (1): one or
    # two triggers, by how the SDK's batches fell between evaluations; then
    # the runs leave the one-minute window and the incident resolves.
    wait_for(lambda: receiver.requests[-1]["body"]["event_action"] == "resolve", timeout=180)
    events = [r["body"] for r in receiver.requests]
    actions = [e["event_action"] for e in events]
    assert actions in (["trigger", "resolve"], ["trigger", "trigger", "resolve"]), actions
    assert {e["dedup_key"] for e in events} == {trigger["dedup_key"]}, "one PagerDuty alert from trigger to resolve"
    assert events[-1]["routing_key"] == "R0UT1NGKEY"


def test_a_rule_webhook_in_the_slack_format(server, client, project, receiver):
    rule = api(server, "POST", "/runs/rules", json={
        "display_name": "failures to Slack", "session_name": project, "interval_seconds": 1,
        "filter": "eq(status, \"error\")",
        "webhooks": [{"url": receiver.url + "/slack", "format": "slack"}, {"url": receiver.url + "/raw"}],
    })
    assert rule.status_code == 200, rule.text
    assert rule.json()["webhooks"][0]["format"] == "slack"
    trace_failures(client, project, 1)
    wait_for(lambda: len(receiver.requests) == 2, timeout=60)
    by_path = {r["path"]: r["body"] for r in receiver.requests}
    slack = by_path["/slack"]
    assert slack["blocks"][0] == {"type": "header", "text": {"type": "plain_text", "text": "Run failed: ChatModel (llm)", "emoji": True}}
    assert "RateLimitError: slow down" in str(slack["blocks"])
    assert slack["text"].startswith("Run failed: ChatModel (llm)")
    assert by_path["/raw"]["runs"][0]["name"] == "ChatModel", "the other webhook gets the payload as is"
