"""The admin write API on a real gateway on loopback: each containment action takes effect on the next request,
is refused to a non-admin, and is audited; the audit chain still verifies afterwards."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from modelshield.core.datasets import sklearn_dataset
from tests.serve.server.conftest import ARCH, State, make_state, running, secure_config

GUARD = {
    "detector": "feature-squeezing",
    "detector_options": {"bits": 2},
    "calibration_data": "sklearn:digits:train",
    "fpr": 0.05,
    "fallback": "abstain",
    "calibration_samples": 400,
}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture(scope="module")
def gateway(weights: tuple[Path, str], tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Two registered versions of one model, version 2 served, guarded; an admin and three predictors."""
    from modelshield.registry import Registry

    root = tmp_path_factory.mktemp("admin")
    roles = {"admin": ["admin"], "alice": ["predictor"], "bob": ["predictor"], "carol": ["predictor"]}
    state = make_state(root / "state", roles)
    registry = Registry.open(state.db_url)
    meta = {"file": "model.safetensors", "num_classes": 10, "bounds": [0.0, 1.0], **ARCH}
    versions = []
    for n in (1, 2):
        folder = root / f"v{n}"
        folder.mkdir()
        shutil.copy(weights[0], folder / "model.safetensors")
        (folder / "NOTES.txt").write_text(f"release {n}\n")
        versions.append(registry.register("digits", folder, owner="test", metadata=meta).version)
    registry.close()
    config = secure_config(state, {"digits": {"version": versions[1], "guard": GUARD}})
    with running(config) as url, httpx.Client(base_url=url, timeout=60) as client:
        yield client, state, versions


def _predict(client: httpx.Client, key: str, x: np.ndarray) -> httpx.Response:
    return client.post("/v1/models/digits/predict", json={"inputs": x.tolist()}, headers=bearer(key))


def _admin_records(state: State, action: str) -> list[dict[str, Any]]:
    return [e for e in state.audit_events() if e.get("action") == action]


def test_admin_writes_need_the_admin_role_and_are_audited_as_denials(gateway: Any) -> None:
    client, state, _ = gateway
    r = client.post("/v1/admin/keys/revoke", json={"subject": "bob"}, headers=bearer(state.keys["alice"]))
    assert r.status_code == 403
    assert _predict(client, state.keys["bob"], np.zeros((1, 1, 8, 8))).status_code == 200
    denied = _admin_records(state, "admin.keys.revoke")[-1]
    assert denied["decision"] == "deny" and denied["actor"]["subject"] == "alice"
    r = client.post("/v1/admin/limits", json={"subject": "bob", "rps": "fast"}, headers=bearer(state.keys["admin"]))
    assert r.status_code == 422 and "rps" in r.json()["error"]


def test_revoke_rotate_and_limit_take_effect_on_the_next_request(gateway: Any) -> None:
    client, state, _ = gateway
    x = sklearn_dataset("digits", "test", seed=0).x[:1].numpy()
    admin = bearer(state.keys["admin"])
    r = client.post("/v1/admin/keys/revoke", json={"subject": "bob"}, headers=admin)
    assert r.status_code == 200 and len(r.json()["revoked"]) == 1
    assert _predict(client, state.keys["bob"], x).status_code == 401
    record = _admin_records(state, "admin.keys.revoke")[-1]
    assert record["decision"] == "allow" and record["admin"]["subject"] == "bob"

    key_id = state.keys["carol"].split("_")[1]
    r = client.post("/v1/admin/keys/rotate", json={"key_id": key_id}, headers=admin)
    assert r.status_code == 200, r.text
    new_key = r.json()["new_key"]
    assert _predict(client, state.keys["carol"], x).status_code == 401
    assert _predict(client, new_key, x).status_code == 200
    assert new_key not in str(_admin_records(state, "admin.keys.rotate"))  # the secret is never audited

    r = client.post("/v1/admin/limits", json={"subject": "alice", "rps": 0.01, "burst": 1}, headers=admin)
    assert r.status_code == 200
    statuses = [_predict(client, state.keys["alice"], x).status_code for _ in range(2)]
    assert statuses == [200, 429]
    controls = client.get("/v1/admin/controls", headers=admin).json()
    assert controls["limits"]["alice"]["rps"] == 0.01


def test_strict_guard_refuses_what_it_used_to_answer_with_an_abstention(gateway: Any) -> None:
    client, state, _ = gateway
    admin = bearer(state.keys["admin"])
    noise = np.random.default_rng(0).uniform(0, 1, (8, 1, 8, 8))  # far from any digit: the guard flags them
    before = client.post("/v1/models/digits/predict", json={"inputs": noise.tolist()}, headers=admin)
    assert before.status_code == 200 and "fallback" in before.json()["guard"]
    r = client.post("/v1/admin/guard", json={"mode": "strict", "model": "digits"}, headers=admin)
    assert r.status_code == 200 and r.json()["guards"]["digits"]["mode"] == "strict"
    after = client.post("/v1/models/digits/predict", json={"inputs": noise.tolist()}, headers=admin)
    assert after.status_code == 422 and "guard" in after.json()["error"]
    client.post("/v1/admin/guard", json={"mode": "normal"}, headers=admin)
    again = client.post("/v1/models/digits/predict", json={"inputs": noise.tolist()}, headers=admin)
    assert again.status_code == 200


def test_rollback_then_quarantine_and_the_chain_still_verifies(gateway: Any) -> None:
    client, state, versions = gateway
    admin = bearer(state.keys["admin"])
    x = sklearn_dataset("digits", "test", seed=0).x[:1].numpy()
    r = client.post("/v1/admin/models/digits/pin", json={}, headers=admin)
    assert r.status_code == 200, r.text
    assert r.json()["from_version"] == str(versions[1]) and r.json()["version"] == str(versions[0])
    assert _predict(client, state.keys["admin"], x).json()["version"] == str(versions[0])
    r = client.post("/v1/admin/models/digits/pin", json={}, headers=admin)
    assert r.status_code == 422 and "no servable version before" in r.json()["error"]

    r = client.post("/v1/admin/models/digits/quarantine", json={"reason": "drill"}, headers=admin)
    assert r.status_code == 200 and r.json()["quarantined"] == [str(versions[0])]
    assert _predict(client, state.keys["admin"], x).status_code == 503
    assert client.post("/v1/admin/models/nope/quarantine", json={}, headers=admin).status_code == 404

    r = client.post(
        "/v1/admin/incident/notes",
        json={"incident": "inc-1", "playbook": "p", "step": "s", "action": "notify", "status": "done"},
        headers=admin,
    )
    assert r.status_code == 200
    note = _admin_records(state, "incident.step")[-1]
    assert note["incident"]["incident"] == "inc-1" and note["actor"]["subject"] == "admin"
    verify = client.get("/v1/admin/audit/verify", headers=admin).json()
    assert verify["ok"], verify["summary"]
    assert {"admin.registry.pin", "admin.registry.quarantine"} <= {e["action"] for e in state.audit_events()}
