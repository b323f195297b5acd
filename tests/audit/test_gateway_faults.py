"""The gateway over a real socket when its audit log cannot be written under load: every request is answered in
bounded time (503 while the audit log is failing, never a hang), ``/readyz`` answers 503 and says why, the gateway
heals without a restart once the fault is gone, every 2xx is in the log, and SIGTERM exits promptly."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from modelshield.audit import AuditLog, load_public_key
from tests.serve.server.conftest import ARCH, free_socket, make_state, running, secure_config

BODY = {"inputs": [[[[0.5] * 8] * 8]]}
CLIENT_TIMEOUT = 20.0  # far above the audit log's 5 s bound: a timeout here is a hang


def until(condition: Callable[[], bool], what: str, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not within {seconds} s"
        time.sleep(0.05)


class Load:
    """``clients`` threads sending predictions with unique request ids until stopped; what each got, how fast."""

    def __init__(self, url: str, key: str, clients: int = 8) -> None:
        self.url, self.key = url, key
        self.status: dict[str, int] = {}
        self.failures: list[str] = []
        self.slowest = 0.0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._client, args=(n,)) for n in range(clients)]
        for t in self._threads:
            t.start()

    def _client(self, n: int) -> None:
        headers = {"Authorization": f"Bearer {self.key}"}
        with httpx.Client(base_url=self.url, headers=headers, timeout=CLIENT_TIMEOUT) as client:
            i = 0
            while not self._stop.is_set():
                rid = f"c{n}-{i}"
                i += 1
                started = time.monotonic()
                try:
                    r = client.post("/v1/models/demo/predict", json=BODY, headers={"X-Request-ID": rid})
                except httpx.HTTPError as exc:
                    with self._lock:
                        self.failures.append(f"{rid}: {type(exc).__name__}: {exc} ({len(self.status)} answered so far)")
                    return
                with self._lock:
                    self.status[rid] = r.status_code
                    self.slowest = max(self.slowest, time.monotonic() - started)

    def count(self, code: int) -> int:
        with self._lock:
            return sum(s == code for s in self.status.values())

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=CLIENT_TIMEOUT + 5)
            assert not t.is_alive(), "a client is still waiting for an answer"


def _ready(url: str) -> httpx.Response:
    return httpx.get(url + "/readyz", timeout=CLIENT_TIMEOUT)


def _point(link: Path, target: Path) -> None:
    """Make ``link`` a symlink to ``target`` in one atomic rename: the witness path turns into a directory (or back)
    with no moment in between at which the writer could create a fresh file there."""
    new = link.with_name(link.name + ".new")
    new.symlink_to(target)
    os.replace(new, link)


def test_witness_path_turned_into_a_directory_under_load(weights: tuple[Path, str], tmp_path: Path) -> None:
    path, digest = weights
    state = make_state(tmp_path / "state", {"alice": ["predictor"]})
    witness, real, directory = tmp_path / "audit.witness", tmp_path / "witness.jsonl", tmp_path / "a-directory"
    directory.mkdir()
    _point(witness, real)
    config = secure_config(
        state,
        {"demo": {"path": str(path), "digest": digest, **ARCH}},
        audit={"witness_file": str(witness), "checkpoint_every": 1},
        rate_limits={"per_identity_rps": 100000, "per_identity_burst": 100000},
    )
    with running(config) as url:
        load = Load(url, state.keys["alice"])
        try:
            until(lambda: load.count(200) >= 20, "answers before the fault")
            _point(witness, directory)
            until(lambda: load.count(503) >= 20, "503 answers while the witness cannot be written")
            r = _ready(url)
            assert r.status_code == 503 and r.json()["audit_log"] == "failing", r.text
            assert "witness" not in r.text  # no file paths for anonymous probes
            _point(witness, real)
            until(lambda: _ready(url).status_code == 200, "ready again without a restart")
            healed = load.count(200)
            until(lambda: load.count(200) >= healed + 20, "answers after the fault")
        finally:
            load.stop()
    assert load.failures == [] and set(load.status.values()) <= {200, 503}
    assert load.slowest < 10.0
    audited = {e.get("request_id") for e in state.audit_events()}
    answered = {rid for rid, code in load.status.items() if code == 200}
    assert answered <= audited
    with AuditLog.open(state.db_url) as log:
        report = log.verify(load_public_key(state.public_key), witness=witness)
    assert report.ok and report.witnessed > 0, report.problems


def _serve(config: Path, log: Path) -> tuple[subprocess.Popen[str], str]:
    """``modelshield serve`` in a subprocess; its stderr goes to ``log`` (a pipe nobody reads would fill up with
    the 503s' error lines and block the server)."""
    sock = free_socket()
    port = sock.getsockname()[1]
    sock.close()
    with log.open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "modelshield", "serve", "--config", str(config), "--port", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=err,
            text=True,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(log.read_text())
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise AssertionError("the gateway did not start")


@pytest.mark.slow
def test_sigterm_exits_promptly_with_the_audit_database_locked(weights: tuple[Path, str], tmp_path: Path) -> None:
    path, digest = weights
    state = make_state(tmp_path, {"alice": ["predictor"]})
    audit_db = tmp_path / "audit.db"
    config = tmp_path / "serve.toml"
    config.write_text(
        f'[models.demo]\npath = "{path}"\ndigest = "{digest}"\narch = "{ARCH["arch"]}"\ninput_shape = [1, 8, 8]\n'
        f'[server]\nstore_url = "{state.db_url}"\n[auth]\napi_key_pepper_file = "{state.pepper}"\n'
        f'[audit]\ndb_url = "sqlite:///{audit_db}"\nsigning_key_file = "{state.private_key}"\n'
        f'witness_file = "{tmp_path / "audit.witness"}"\n'
        "[rate_limits]\nper_identity_rps = 100000\nper_identity_burst = 100000\n"
    )
    proc, url = _serve(config, tmp_path / "gateway.log")
    holder: Any = None
    load = Load(url, state.keys["alice"], clients=4)
    try:
        until(lambda: load.count(200) >= 10, "answers before the fault")
        holder = sqlite3.connect(audit_db, isolation_level=None, timeout=30)
        holder.execute("BEGIN EXCLUSIVE")  # another process holds the audit database: the writer blocks
        until(lambda: _ready(url).status_code == 503, "not ready while the audit writer is blocked")
        until(lambda: load.count(503) >= 4, "503 answers while the audit writer is blocked")
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        took = time.monotonic() - started
    finally:
        load.stop()
        if proc.poll() is None:
            proc.kill()
        if holder is not None:
            holder.close()
    assert took < 8.0, f"SIGTERM took {took:.1f} s"
    assert not [f for f in load.failures if "Timeout" in f], load.failures  # cut off by the exit, never left hanging
    assert set(load.status.values()) <= {200, 503}
    answered = {rid for rid, code in load.status.items() if code == 200}
    with sqlite3.connect(audit_db) as conn:
        audited = {json.loads(e).get("request_id") for (e,) in conn.execute("SELECT event FROM audit_records")}
    assert answered <= audited
