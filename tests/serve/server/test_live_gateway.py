"""Live monitoring on a real gateway socket: clean traffic reads no drift, a shifted batch raises drift (gauge,
audit event, window verdict) beside the denials of the same window; the monitor view needs ``monitor.read``,
and a dashboard session is an HttpOnly cookie that sign-out ends."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from modelshield.core.datasets import sklearn_dataset
from tests.serve.server.conftest import ARCH, State, make_state, running, secure_config

Live = tuple[httpx.Client, State]
RunMain = Callable[..., tuple[int, str, str]]


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture(scope="module")
def live(weights: tuple[Path, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    path, digest = weights
    state = make_state(tmp_path_factory.mktemp("live"), {"alice": ["predictor"], "auditor": ["auditor"]})
    config = secure_config(
        state,
        {"digits": {"path": str(path), "digest": digest, **ARCH}},
        monitor={"reference_data": "sklearn:digits:train", "window": 300, "min_rows": 100, "check_seconds": 0.1},
        rate_limits={"per_identity_rps": 1000, "per_identity_burst": 1000},
    )
    with running(config) as url, httpx.Client(base_url=url, timeout=60) as client:
        yield client, state


def view(client: httpx.Client, key: str, seen: int) -> dict[str, Any]:
    """The monitor view once a check has covered ``seen`` inputs."""
    deadline = time.monotonic() + 20
    while True:
        r = client.get("/v1/admin/monitor", headers=bearer(key))
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        last = body["models"]["digits"]["last_check"]
        if last and last["seen"] >= seen:
            return body
        assert time.monotonic() < deadline, "no live check covered the traffic"
        time.sleep(0.05)


def predict(client: httpx.Client, key: str, x: np.ndarray) -> httpx.Response:
    return client.post("/v1/models/digits/predict", json={"inputs": x.tolist()}, headers=bearer(key))


def test_drift_is_seen_beside_the_denials_of_its_window(live: Live) -> None:
    client, state = live
    test = sklearn_dataset("digits", "test", seed=0).x.numpy()
    for start in range(0, 300, 50):
        assert predict(client, state.keys["alice"], test[start : start + 50]).status_code == 200
    clean = view(client, state.keys["auditor"], 300)["models"]["digits"]
    assert clean["monitored"] and clean["last_check"]["drift"] is False
    assert clean["last_check"]["rows"] == 300

    shifted = np.clip(test[:300] + np.random.default_rng(0).uniform(-0.3, 0.3, test[:300].shape), 0, 1)
    for start in range(0, 300, 50):
        assert predict(client, state.keys["alice"], shifted[start : start + 50]).status_code == 200
    for _ in range(3):
        assert predict(client, "msk_not_a_key", test[:1]).status_code == 401
    body = view(client, state.keys["auditor"], 600)
    digits = body["models"]["digits"]
    assert digits["last_check"]["drift"] is True and digits["drifting"] is True
    assert digits["last_check"]["share"] > 0.2
    window = digits["buckets"][-1]
    assert window["requests"] >= 15 and window["denied"] == 3 and window["samples"] >= 600
    assert window["drift_checks"] >= 1 and window["security"] >= 3
    assert window["start"] in digits["correlation"]["co_occurring"]
    # the onset of drift is an audit event, listed in the view's alert feed and in the log itself
    assert any(e["action"] == "monitor.drift" and e["model"] == "digits" for e in body["events"])
    assert any(e["action"] == "monitor.drift" for e in state.audit_events())

    metrics = client.get("/metrics").text
    assert 'modelshield_drift_detected{model="digits"} 1.0' in metrics
    assert 'modelshield_live_window_rows{model="digits"} 300.0' in metrics
    assert 'modelshield_drift_checks_total{drift="true",model="digits"}' in metrics


def test_the_view_needs_monitor_read(live: Live) -> None:
    client, state = live
    assert client.get("/v1/admin/monitor").status_code == 401
    assert client.get("/v1/admin/monitor", headers=bearer(state.keys["alice"])).status_code == 403
    assert client.post("/v1/admin/session", headers=bearer(state.keys["alice"])).status_code == 403


def test_a_dashboard_session_is_an_httponly_cookie_that_sign_out_ends(live: Live) -> None:
    client, state = live
    with httpx.Client(base_url=str(client.base_url), timeout=30) as browser:
        r = browser.post("/v1/admin/session", headers=bearer(state.keys["auditor"]))
        assert r.status_code == 200 and r.json()["subject"] == "auditor"
        cookie = r.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie and "path=/" in cookie
        assert state.keys["auditor"] not in r.text
        assert browser.get("/v1/admin/monitor").status_code == 200  # the cookie alone
        assert browser.delete("/v1/admin/session").status_code == 200
        browser.cookies.clear()
        assert browser.get("/v1/admin/monitor").status_code == 401
    # a forged or stale cookie is refused, and the key never appears in the audit log
    forged = httpx.get(f"{client.base_url}/v1/admin/monitor", cookies={"modelshield_session": "x" * 43})
    assert forged.status_code == 401
    assert not any(state.keys["auditor"] in str(e) for e in state.audit_events())


def test_the_dashboard_page_carries_no_data_and_a_strict_policy(live: Live) -> None:
    client, _ = live
    page = client.get("/admin/dashboard")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
    assert '<script src="/admin/dashboard.js"' in page.text
    assert client.get("/admin/dashboard.js").headers["content-type"].startswith("text/javascript")


def test_the_dashboard_command_prints_the_view_and_refuses_a_key_without_the_right(
    live: Live, run_main: RunMain, tmp_path: Path
) -> None:
    client, state = live
    url = str(client.base_url)
    key = tmp_path / "auditor.key"
    key.write_text(state.keys["auditor"] + "\n")
    code, out, err = run_main("dashboard", "--target", url, "--key-file", str(key))
    assert code == 0, err
    assert out.startswith("digits: ") and "denied" in out and "drift: " in out
    code, out, _ = run_main("dashboard", "--target", url, "--key-file", str(key), "--json")
    assert code == 0 and "digits" in json.loads(out)["models"]
    code, out, err = run_main("dashboard", "--target", url, "--no-open")
    assert code == 0 and f"{url}/admin/dashboard" in out
    key.write_text(state.keys["alice"])
    code, _, err = run_main("dashboard", "--target", url, "--key-file", str(key))
    assert code == 2 and "monitor.read" in err and state.keys["alice"] not in err


def test_a_sketch_registered_with_the_model_version_is_its_reference(
    weights: tuple[Path, str], tmp_path: Path, run_main: RunMain
) -> None:
    """``modelshield monitor sketch`` over the flattened training digits, registered in the version's folder with
    metadata ``sketch=...``: a bare ``[monitor]`` table monitors against it."""
    import shutil

    from modelshield.registry import Registry

    folder = tmp_path / "version"
    folder.mkdir()
    shutil.copy(weights[0], folder / "model.safetensors")
    np.savez(tmp_path / "train.npz", x=sklearn_dataset("digits", "train", seed=0).x.numpy().reshape(-1, 64))
    code, _, err = run_main(
        "monitor", "sketch", "--reference", str(tmp_path / "train.npz"), "-o", str(folder / "ref.json")
    )
    assert code == 0, err
    state = make_state(tmp_path / "state", {"alice": ["predictor"], "auditor": ["auditor"]})
    registry = Registry.open(state.db_url)
    meta = {"file": "model.safetensors", "sketch": "ref.json", "num_classes": 10, "bounds": [0.0, 1.0], **ARCH}
    mv = registry.register("digits", folder, owner="test", metadata=meta)
    registry.close()
    config = secure_config(state, {"digits": {"version": mv.version}}, monitor={"window": 100, "check_seconds": 0.1})
    test = sklearn_dataset("digits", "test", seed=0).x.numpy()
    with running(config) as url, httpx.Client(base_url=url, timeout=30) as client:
        noisy = np.clip(test[:100] + np.random.default_rng(2).uniform(-0.3, 0.3, test[:100].shape), 0, 1)
        for half in (noisy[:50], noisy[50:]):
            assert predict(client, state.keys["alice"], half).status_code == 200
        last = view(client, state.keys["auditor"], 100)["models"]["digits"]["last_check"]
    assert last["drift"] is True and last["top"][0]["feature"].startswith("x[")
