"""Fixtures for driving the real runhook binary with the real LangSmith SDK.

Each test module gets its own server (the real `runhook serve` binary on an
ephemeral port, with a temporary data directory); each test gets a fresh
project name so tests never see each other's runs.
"""

import hashlib
import os
import pathlib
import subprocess
import threading
import time
import uuid

import pytest
import requests
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
        database = database_for(data_dir)
        if database:
            # Replicas share no data directory: the keys come from a file
            # named explicitly (here, one per test server).
            self.env["RUNHOOK_DATABASE_URL"] = database
            self.env["RUNHOOK_SECRET_KEY_FILE"] = str(pathlib.Path(data_dir) / "secret.key")
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


ON_POSTGRES = bool(os.environ.get("RUNHOOK_E2E_DATABASE"))


def database_for(data_dir) -> str | None:
    """The Postgres database a server on `data_dir` uses when the suite runs
    on Postgres (RUNHOOK_E2E_DATABASE names a server, as tests/run.sh sets it
    for its second pass): one per data directory, created on first use, so a
    restarted server finds what it stored."""
    server = os.environ.get("RUNHOOK_E2E_DATABASE")
    if not server:
        return None
    name = "sdk_" + hashlib.sha256(str(data_dir).encode()).hexdigest()[:16]
    out = subprocess.run(["psql", server, "-qXc", f"CREATE DATABASE {name}"], capture_output=True, text=True)
    if out.returncode != 0 and "already exists" not in out.stderr:
        raise RuntimeError(f"cannot create database {name}: {out.stderr}")
    return server.rsplit("/", 1)[0] + "/" + name


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


def api(server, method, path, **kw):
    """A request to the server's API under /api/v1, with the test API key."""
    return requests.request(method, server.url + "/api/v1" + path, headers={"x-api-key": API_KEY}, timeout=30, **kw)


@pytest.fixture
def receiver():
    """A local webhook receiver recording every request (receiver.py)."""
    from receiver import Receiver

    r = Receiver()
    yield r
    r.close()
