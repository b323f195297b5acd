"""``modelshield serve`` as a user runs it: the demo from a cold start, a bad config, and kill -9 mid-load."""

from __future__ import annotations

import json
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.serve.server.conftest import ARCH, ONE_THREAD_ENV, audit_verify, free_socket, make_state

ENV = ONE_THREAD_ENV


def _start(args: list[str], state: Path) -> tuple[subprocess.Popen[str], str]:
    sock = free_socket()
    port = sock.getsockname()[1]
    sock.close()
    proc = subprocess.Popen(
        [sys.executable, "-m", "modelshield", "serve", *args, "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(proc.stderr.read())  # type: ignore[union-attr]
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise AssertionError("server did not start")


def test_bad_config_is_one_line_and_exit_2(tmp_path):
    config = tmp_path / "serve.toml"
    config.write_text('[models."../x"]\nversion = 1\n')
    done = subprocess.run(
        [sys.executable, "-m", "modelshield", "serve", "--config", str(config)],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=60,
    )
    assert done.returncode == 2 and done.stderr.startswith("error: ") and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_demo_from_a_cold_start_prints_a_working_key(tmp_path):
    proc, url = _start(["--demo", "--state-dir", str(tmp_path / "demo")], tmp_path)
    try:
        proc.send_signal(signal.SIGINT)  # serving (/healthz answered): the key was printed before the server started
        err = proc.communicate(timeout=30)[1]
        key = re.search(r"predictor API key[^:]*: (msk_\S+)", err).group(1)  # type: ignore[union-attr]
        proc, url = _start(["--demo", "--state-dir", str(tmp_path / "demo")], tmp_path)  # cached weights, same store
        body = json.loads((tmp_path / "demo" / "example-request.json").read_text())
        r = httpx.post(url + "/v1/models/demo/predict", json=body, headers={"Authorization": f"Bearer {key}"})
        assert r.status_code == 200 and r.json()["model"] == "demo", r.text
        assert httpx.post(url + "/v1/models/demo/predict", json=body).status_code == 401
        admin = (tmp_path / "demo" / "admin.key").read_text().strip()
        verify = httpx.get(url + "/v1/admin/audit/verify", headers={"Authorization": f"Bearer {admin}"})
        assert verify.json()["ok"] is True
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.slow
def test_kill_9_mid_load_loses_no_answered_request(weights, tmp_path):
    path, digest = weights
    state = make_state(tmp_path, {"dave": ["predictor"]})
    config = tmp_path / "serve.toml"
    config.write_text(
        f'[models.demo]\npath = "{path}"\ndigest = "{digest}"\narch = "{ARCH["arch"]}"\ninput_shape = [1, 8, 8]\n'
        f'[server]\nstore_url = "{state.db_url}"\n[auth]\napi_key_pepper_file = "{state.pepper}"\n'
        f'[audit]\ndb_url = "{state.db_url}"\nsigning_key_file = "{state.private_key}"\n'
        f"[rate_limits]\nper_identity_rps = 100000\nper_identity_burst = 100000\n"
    )
    proc, url = _start(["--config", str(config)], tmp_path)
    answered: list[str] = []
    body = {"inputs": [[[[0.5] * 8] * 8]]}

    def client() -> None:
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {state.keys['dave']}"}) as c:
            while True:
                try:
                    r = c.post("/v1/models/demo/predict", json=body)
                except httpx.HTTPError:
                    return
                if r.status_code == 200:
                    answered.append(r.json()["request_id"])

    threads = [threading.Thread(target=client) for _ in range(8)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 60
    while len(answered) < 60 and time.monotonic() < deadline:  # mid-load: clients busy, answers coming back
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    for t in threads:
        t.join(timeout=30)
    assert len(answered) >= 60, f"only {len(answered)} requests answered in 60 s before the kill"
    with sqlite3.connect(tmp_path / "store.db") as conn:
        audited = {json.loads(e).get("request_id") for (e,) in conn.execute("SELECT event FROM audit_records")}
    assert set(answered) <= audited
    done = audit_verify(state.db_url, state.public_key)
    assert done.returncode == 0, done.stdout + done.stderr
