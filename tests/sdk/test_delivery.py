"""Webhook delivery through the real binary: secrets at rest, SSRF refusal,
deliveries API and CLI, redelivery, and pending deliveries surviving kill -9."""

import os
import subprocess

import pytest
from langsmith import Client

from conftest import API_KEY, ON_POSTGRES, REPO, Server, api, database_for, wait_for
from receiver import Receiver
from test_rules import create_rule, trace_answers

BINARY = os.environ.get("RUNHOOK_BIN", str(REPO / "target" / "debug" / "runhook"))

URL_SECRET = "urltoken-7f3a9c1e5b"
HEADER_SECRET = "headervalue-2d8e4b6a0c"
SIGNING_SECRET = "whsec_c2VjcmV0LXNpZ25pbmcta2V5LTAxMjM0NTY3ODk="


def client_for(server):
    c = Client(api_url=server.url, api_key=API_KEY)
    wait_for(lambda: c.compressed_traces is not None)
    return c


def deliveries(server, **params):
    resp = api(server, "GET", "/deliveries", params=params)
    assert resp.status_code == 200, resp.text
    return resp.json()



def test_secrets_never_reach_the_database_or_the_logs(tmp_path, receiver):
    data = tmp_path / "data"
    # At debug, every attempt (successes too) and every request is logged.
    server = Server(data, env={"RUST_LOG": "debug"})
    try:
        client = client_for(server)
        project = "secrets"
        rule = create_rule(server, {
            "display_name": "secret target", "session_name": project, "interval_seconds": 1,
            "signing_secret": SIGNING_SECRET,
            "webhooks": [{"url": f"{receiver.url}/hook?token={URL_SECRET}", "headers": {"x-auth": HEADER_SECRET}}],
        })
        trace_answers(client, project, ["one"])
        wait_for(lambda: receiver.requests, timeout=30)
        # The receiver got the real values ...
        req = receiver.requests[0]
        assert req["path"].endswith(URL_SECRET)
        assert {k.lower(): v for k, v in req["headers"].items()}["x-auth"] == HEADER_SECRET
        wait_for(lambda: deliveries(server, rule_id=rule["id"], status="delivered"))
        # ... the API shows them masked, or not at all ...
        shown = api(server, "GET", f"/runs/rules/{rule['id']}").text + api(server, "GET", "/deliveries").text
        assert "token=***" in shown
        for secret in (URL_SECRET, HEADER_SECRET, SIGNING_SECRET):
            assert secret not in shown
    finally:
        server.stop()
    # ... and neither the database files nor the log hold them in clear.
    if ON_POSTGRES:
        stored = subprocess.run(["pg_dump", "--data-only", database_for(data)], capture_output=True, check=True).stdout
    else:
        stored = b"".join(p.read_bytes() for p in data.iterdir() if p.is_file() and p.name != "secret.key")
    assert b"enc:v1:" in stored
    log = server.log_text()
    assert "webhook attempt" in log
    for secret in (URL_SECRET, HEADER_SECRET, SIGNING_SECRET):
        assert secret.encode() not in stored, f"{secret} stored in clear"
        assert secret not in log, f"{secret} logged"
    assert oct((data / "secret.key").stat().st_mode & 0o777) == "0o600"


@pytest.mark.skipif(ON_POSTGRES, reason="the embedded store's rotation (its lock and key file); "
                    "on a shared database tests/e2e/keys.rs rotates under serving replicas")
def test_keys_rotate_reseals_everything_under_a_new_key(tmp_path, receiver):
    data = tmp_path / "data"
    server = Server(data)
    try:
        create_rule(server, {"display_name": "rotating", "session_name": "rot", "interval_seconds": 1,
                             "webhooks": [{"url": f"{receiver.url}/hook?token={URL_SECRET}"}]})
    finally:
        server.stop()
    old_key = (data / "secret.key").read_text()
    # Refused while a server holds the data directory.
    running = Server(data)
    try:
        busy = subprocess.run([BINARY, "keys", "rotate", "--data-dir", str(data)], capture_output=True, text=True)
        assert busy.returncode != 0 and "in use" in busy.stderr
    finally:
        running.stop()
    out = subprocess.run([BINARY, "keys", "rotate", "--data-dir", str(data)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "re-sealed" in out.stdout
    new_key = (data / "secret.key").read_text()
    assert new_key != old_key and old_key.splitlines()[-1] not in new_key
    # The rule still works under the new key alone.
    server = Server(data)
    try:
        client = client_for(server)
        trace_answers(client, "rot", ["after rotation"])
        wait_for(lambda: receiver.requests, timeout=30)
        assert receiver.requests[0]["path"].endswith(URL_SECRET)
    finally:
        server.stop()


def test_loopback_targets_are_refused_unless_allowed(tmp_path, receiver):
    data = tmp_path / "data"
    target = {"url": receiver.url + "/hook?token=s3cr3t-token"}
    # A rule saved while the operator allows loopback ...
    server = Server(data)
    try:
        rule = create_rule(server, {"display_name": "ssrf", "session_name": "ssrf", "interval_seconds": 1,
                                    "webhooks": [target]})
    finally:
        server.stop()
    # ... then loopback is closed: new rules to it are refused when saved, by
    # address or by a name resolving to it ...
    server = Server(data, env={"RUNHOOK_ALLOW_NETWORKS": ""})
    try:
        port = receiver.url.rsplit(":", 1)[1]
        for url in (target["url"], f"http://localhost:{port}/hook"):
            refused = api(server, "POST", "/runs/rules", json={
                "display_name": "ssrf 2", "session_name": "ssrf", "webhooks": [{"url": url}]})
            assert refused.status_code == 400, refused.text
            detail = refused.json()["detail"]
            assert "webhooks[0].url" in detail and "loopback" in detail and "RUNHOOK_ALLOW_NETWORKS" in detail
            assert "s3cr3t-token" not in detail
        # ... and the rule saved before delivers nothing: each delivery fails, forbidden.
        client = client_for(server)
        trace_answers(client, "ssrf", ["to loopback"])
        failed = wait_for(lambda: deliveries(server, rule_id=rule["id"], status="failed"), timeout=30)
        assert failed[0]["history"][0]["class"] == "forbidden"
        assert "loopback" in failed[0]["last_error"] and "RUNHOOK_ALLOW_NETWORKS" in failed[0]["last_error"]
        logs = api(server, "GET", f"/runs/rules/{rule['id']}/logs").json()
        assert logs[0]["webhooks"]["outcome"] == "error"
        assert receiver.requests == []
    finally:
        server.stop()


def test_failed_deliveries_are_listed_and_redelivered_with_the_same_id(server, client, project):
    receiver = Receiver(status=500)
    try:
        rule = create_rule(server, {"display_name": "redeliver", "session_name": project, "interval_seconds": 1,
                                    "webhooks": [{"url": receiver.url + "/hook"}]})
        trace_answers(client, project, ["flaky receiver"])
        failed = wait_for(lambda: deliveries(server, rule_id=rule["id"], status="failed"), timeout=30)[0]
        assert failed["attempts"] == 3
        assert [a["class"] for a in failed["history"]] == ["server_error"] * 3
        assert [a["status_code"] for a in failed["history"]] == [500] * 3
        # The CLI lists it.
        env = {**os.environ, "RUNHOOK_SERVER": server.url, "RUNHOOK_API_KEY": API_KEY}
        listed = subprocess.run([BINARY, "deliveries", "list", "--rule", rule["id"]], capture_output=True, text=True,
                                env=env)
        assert listed.returncode == 0, listed.stderr
        assert failed["id"] in listed.stdout and "failed" in listed.stdout
        # Redelivery of a pending one is refused; of a failed one, queued.
        receiver.status = 200
        redone = subprocess.run([BINARY, "deliveries", "redeliver", failed["id"]], capture_output=True, text=True,
                                env=env)
        assert redone.returncode == 0, redone.stderr
        done = wait_for(lambda: deliveries(server, rule_id=rule["id"], status="delivered"), timeout=30)[0]
        assert [a["class"] for a in done["history"]] == ["server_error"] * 3 + ["success"]
        ids = {webhook_id(r) for r in receiver.requests}
        assert ids == {failed["id"]}, "every attempt and the redelivery carry the same webhook-id"
        shown = subprocess.run([BINARY, "deliveries", "show", failed["id"]], capture_output=True, text=True, env=env)
        assert "attempt  4" in shown.stdout and "success" in shown.stdout
        bad = api(server, "POST", "/deliveries/not-a-uuid/redeliver")
        assert bad.status_code == 400 and "not a UUID" in bad.json()["detail"]
        assert api(server, "GET", "/deliveries", params={"status": "lost"}).status_code == 400
    finally:
        receiver.close()


def test_a_receiver_outage_is_recovered_by_one_bulk_redelivery(server, client, project):
    receiver = Receiver(status=404)
    fixed = Receiver()
    try:
        rule = create_rule(server, {"display_name": "outage", "session_name": project, "interval_seconds": 1,
                                    "max_runs_per_payload": 1, "webhooks": [{"url": receiver.url + "/hook"}]})
        trace_answers(client, project, ["one", "two", "three"])
        failed = wait_for(lambda: len(deliveries(server, rule_id=rule["id"], status="failed")) == 3
                          and deliveries(server, rule_id=rule["id"], status="failed"), timeout=30)
        # Bad requests name what is wrong.
        for body, needle in [({}, "since"), ({"since": "last week"}, "since"),
                             ({"since": "2026-01-01T00:00:00Z", "status": "pending"}, "status"),
                             ({"since": "2030-01-01T00:00:00Z", "until": "2029-01-01T00:00:00Z"}, "until"),
                             ({"since": "2026-01-01T00:00:00Z", "rule": "x"}, "rule")]:
            bad = api(server, "POST", "/deliveries/redeliver", json=body)
            assert bad.status_code == 400 and needle in bad.json()["detail"], (body, bad.text)
        unknown = api(server, "POST", "/deliveries/redeliver",
                      json={"since": "2026-01-01T00:00:00Z", "rule_id": "00000000-0000-4000-8000-000000000000"})
        assert unknown.status_code == 404
        # What a redelivery of the window would take, listed first.
        env = {**os.environ, "RUNHOOK_SERVER": server.url, "RUNHOOK_API_KEY": API_KEY}
        listed = subprocess.run([BINARY, "deliveries", "list", "--status", "failed", "--since", "10m", "--rule",
                                 rule["id"]], capture_output=True, text=True, env=env)
        assert listed.returncode == 0, listed.stderr
        assert all(d["id"] in listed.stdout for d in failed)
        assert deliveries(server, rule_id=rule["id"], since="2999-01-01T00:00:00Z") == []
        assert len(deliveries(server, rule_id=rule["id"], since="2026-01-01T00:00:00Z", until="2999-01-01")) == 3
        bad = api(server, "GET", "/deliveries", params={"since": "soon"})
        assert bad.status_code == 400 and "since" in bad.json()["detail"]
        # The rule's URL was wrong: corrected, one command queues every failed
        # delivery of the rule again, to the corrected URL.
        patched = api(server, "PATCH", f"/runs/rules/{rule['id']}", json={"webhooks": [{"url": fixed.url + "/hook"}]})
        assert patched.status_code == 200, patched.text
        redone = subprocess.run([BINARY, "deliveries", "redeliver", "--since", "10m", "--rule", rule["id"]],
                                capture_output=True, text=True, env=env)
        assert redone.returncode == 0, redone.stderr
        assert "queued again: 3 deliveries" in redone.stdout
        done = wait_for(lambda: len(deliveries(server, rule_id=rule["id"], status="delivered")) == 3
                        and deliveries(server, rule_id=rule["id"], status="delivered"), timeout=30)
        assert {d["id"] for d in done} == {d["id"] for d in failed}
        for d in done:
            assert [a["class"] for a in d["history"]] == ["client_error", "success"]
        assert len(receiver.requests) == 3, "nothing more went to the wrong URL"
        delivered_ids = [webhook_id(r) for r in fixed.requests]
        assert sorted(delivered_ids) == sorted(d["id"] for d in failed), "each delivery kept its webhook-id"
        # Nothing failed is left in the window.
        again = api(server, "POST", "/deliveries/redeliver", json={"since": "2026-01-01T00:00:00Z"})
        assert again.status_code == 202 and again.json() == {"redelivered": 0}
    finally:
        receiver.close()
        fixed.close()


def webhook_id(request):
    return {k.lower(): v for k, v in request["headers"].items()}["webhook-id"]


def test_pending_deliveries_complete_after_kill_with_their_ids(tmp_path):
    """Deliveries waiting for a retry when the host is killed are completed
    after restart, each with its original webhook-id."""
    receiver = Receiver(status=503, headers={"retry-after": "4"})
    data = tmp_path / "data"
    server = Server(data)
    try:
        client = client_for(server)
        create_rule(server, {"display_name": "pending", "session_name": "pending", "interval_seconds": 1,
                             "max_runs_per_payload": 1, "webhooks": [{"url": receiver.url + "/hook"}]})
        trace_answers(client, "pending", [f"answer {i}" for i in range(5)])
        wait_for(lambda: len({webhook_id(r) for r in receiver.requests}) == 5, timeout=30)
        first_ids = {webhook_id(r) for r in receiver.requests}
        assert len(deliveries(server, status="pending")) == 5
        server.proc.kill()
        server.proc.wait()
        receiver.status = 200
        server = Server(data)
        wait_for(lambda: len(deliveries(server, status="delivered")) == 5, timeout=40)
        assert {d["id"] for d in deliveries(server, status="delivered")} == first_ids
        assert {webhook_id(r) for r in receiver.requests if r.get("status") == 200} <= first_ids
        assert deliveries(server, status="pending") == []
    finally:
        server.stop()
        receiver.close()
