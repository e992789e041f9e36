"""Fixtures for driving the real runhook binary with the real LangSmith SDK.

Each test module gets its own server (the real `runhook serve` binary on an
ephemeral port, with a temporary data directory); each test gets a fresh
project name so tests never see each other's runs.
"""

import os
import pathlib
import subprocess
import threading
import time
import uuid

import pytest
from langsmith import Client

REPO = pathlib.Path(__file__).resolve().parents[2]
API_KEY = "rh_test_key_0123456789abcdef"


class Server:
    """A running `runhook serve` process and what it logged."""

    def __init__(self, data_dir: pathlib.Path, env: dict | None = None):
        binary = os.environ.get("RUNHOOK_BIN", str(REPO / "target" / "debug" / "runhook"))
        self.env = {
            **os.environ,
            "RUNHOOK_API_KEY": API_KEY,
            "NO_COLOR": "1",
            "RUST_LOG": "info,runhook=debug",
            # Receivers in tests listen on loopback, which webhooks may not reach by default.
            "RUNHOOK_ALLOW_NETWORKS": "127.0.0.0/8",
            # Rules name plugins built under the repository's plugins/.
            "RUNHOOK_PLUGINS_DIR": str(REPO / "plugins"),
        }
        self.env.update(env or {})
        self.proc = subprocess.Popen(
            [binary, "serve", "--listen", "127.0.0.1:0", "--data-dir", str(data_dir)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self.env,
        )
        line = self.proc.stdout.readline()
        if "listening on" not in line:
            raise RuntimeError(f"runhook did not start: {line!r} {self.proc.stderr.read()}")
        self.url = line.strip().rsplit(" ", 1)[-1]
        self.log: list[str] = []
        self._reader = threading.Thread(target=self._read_log, daemon=True)
        self._reader.start()

    def _read_log(self):
        for line in self.proc.stderr:
            self.log.append(line)

    def log_text(self) -> str:
        return "".join(self.log)

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("runhook-data"))
    yield s
    s.stop()


@pytest.fixture
def client(server):
    c = Client(api_url=server.url, api_key=API_KEY)
    # The SDK's tracing thread switches to zstd once it has read /info; a
    # long-running app is past that point, so wait for it too.
    wait_for(lambda: c.compressed_traces is not None)
    yield c
    c.flush()


@pytest.fixture
def project():
    return f"proj-{uuid.uuid4().hex[:8]}"


def wait_for(predicate, timeout=10.0):
    """Polls until `predicate()` is truthy; returns its value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.05)
