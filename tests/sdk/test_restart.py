"""Crash safety of rules: kill -9 in the middle of a stream of runs, start
again, and check every run reached the receiver in exactly one delivery
(a delivery interrupted mid-flight may arrive twice, with the same
webhook-id)."""

import os
import signal
import time

import requests
from langsmith import Client, traceable, tracing_context

from conftest import API_KEY, Server, wait_for
from receiver import Receiver


def test_restart_mid_stream_neither_loses_nor_resends(tmp_path):
    receiver = Receiver()
    data = tmp_path / "data"
    server = Server(data)
    rule = requests.post(
        server.url + "/api/v1/runs/rules",
        headers={"x-api-key": API_KEY},
        json={"display_name": "all", "session_name": "stream", "interval_seconds": 1,
              "webhooks": [{"url": receiver.url + "/all"}]},
        timeout=30,
    ).json()
    assert "id" in rule, rule

    def stream(url, start, n):
        client = Client(api_url=url, api_key=API_KEY, auto_batch_tracing=False)

        @traceable(run_type="tool", name="step")
        def step(i):
            return {"i": i}

        with tracing_context(client=client, project_name="stream", enabled=True):
            for i in range(start, start + n):
                step(i)
                time.sleep(0.01)

    stream(server.url, 0, 150)
    # Let a cycle or two deliver part of it, then kill without warning.
    wait_for(lambda: len(receiver.requests) >= 1, timeout=30)
    os.kill(server.proc.pid, signal.SIGKILL)
    server.proc.wait()
    server = Server(data)
    stream(server.url, 150, 150)

    def received():
        return {r["outputs"]["i"] for b in receiver.bodies() for r in b["runs"]}

    wait_for(lambda: received() == set(range(300)), timeout=60)
    time.sleep(2.5)
    # Each run in exactly one delivery (by webhook-id); a re-sent delivery repeats its id.
    delivery_of = {}
    for req in receiver.requests:
        for run in req["body"]["runs"]:
            wid = req["headers"]["webhook-id"]
            assert delivery_of.setdefault(run["outputs"]["i"], wid) == wid, "a run was sent in two different deliveries"
    assert set(delivery_of) == set(range(300))
    server.stop()
    receiver.close()
