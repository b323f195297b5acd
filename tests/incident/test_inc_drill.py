"""Drills on a live gateway: the attack shows in the audit log, the playbook contains it through the admin API, and
every step is audited (the chain still verifies). One small drill in the default run; the demo drills are slow."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import torch
import yaml

from modelshield.audit.keys import load_public_key
from modelshield.cli.audit import existing_log
from modelshield.core.datasets import sklearn_dataset
from modelshield.core.loading import save_torch_model
from modelshield.demo import train_digits_cnn
from modelshield.incident import verify_bundle
from modelshield.incident.playbooks import AdminClient, Incident, PlaybookRunner, builtin_playbooks
from modelshield.monitor.alerts.loopback import WebhookReceiver
from modelshield.serve.app import create_app
from modelshield.serve.runtime import file_digest
from tests.serve.server.conftest import ARCH, make_state, secure_config

if TYPE_CHECKING:
    from conftest import RunMain, ServeAsgi


@pytest.fixture(scope="module")
def gateway_state(tmp_path_factory: pytest.TempPathFactory) -> Any:
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("drill")
    weights = root / "digits.safetensors"
    save_torch_model(train_digits_cnn(sklearn_dataset("digits", "train", seed=0), epochs=2), weights)
    roles = {"admin": ["admin"], "mallory": ["predictor"], "alice": ["predictor"]}
    state = make_state(root / "state", roles)
    config = secure_config(state, {"digits": {"path": str(weights), "digest": file_digest(weights), **ARCH}})
    return state, config


def test_compromised_credentials_drill_contains_the_stolen_key_with_every_step_audited(
    run_main: RunMain, serve_asgi: ServeAsgi, gateway_state: Any, tmp_path: Path
) -> None:
    state, config = gateway_state
    (tmp_path / "admin.key").write_text(state.keys["admin"] + "\n")
    (tmp_path / "mallory.key").write_text(state.keys["mallory"] + "\n")
    receiver = WebhookReceiver()
    rules = {
        "version": 1,
        "routes": {"oncall": {"type": "webhook", "url": receiver.url}},
        "escalation": {"critical": [{"route": "oncall"}]},
        "rules": [],
    }
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rules))
    out = tmp_path / "out"
    try:
        with serve_asgi(create_app(config)) as port:
            url = f"http://127.0.0.1:{port}"
            code, stdout, stderr = run_main(
                "incident", "drill", "compromised-credentials", "--target", url, "--model", "digits",
                "--admin-key-file", str(tmp_path / "admin.key"), "--attacker-key-file", str(tmp_path / "mallory.key"),
                "--audit-db", state.db_url, "--evidence-key", str(state.private_key),
                "--routes", str(tmp_path / "rules.yaml"), "--out", str(out),
            )  # fmt: skip
            body = {"inputs": sklearn_dataset("digits", "test", seed=0).x[:1].tolist()}
            refused = httpx.post(f"{url}/v1/models/digits/predict", json=body, headers=_bearer(state.keys["mallory"]))
            still = httpx.post(f"{url}/v1/models/digits/predict", json=body, headers=_bearer(state.keys["alice"]))
        delivered = receiver.wait(1)
    finally:
        receiver.close()
    assert code == 0, stdout + stderr
    (result,) = json.loads((out / "drill.json").read_text())
    assert result["ok"] and result["incident"]["subject"] == "mallory"
    assert 0 <= result["time_to_detect_s"] < 10 and 0 <= result["time_to_contain_s"] < 20
    assert refused.status_code == 401 and still.status_code == 200  # only the stolen key is cut off
    assert [a["action"] for a in result["audit"]["admin_calls"]] == ["admin.keys.revoke"]
    assert set(result["audit"]["steps_recorded"]) == {s["name"] for s in result["run"]["steps"]}
    payload = json.loads(delivered[0]["body"])
    assert payload["alert"]["rule"] == "compromised-credentials" and "commander" in payload["alert"]["labels"]["notify"]
    bundle = next(s for s in result["run"]["steps"] if s["action"] == "snapshot_evidence")["detail"]["bundle"]
    assert verify_bundle(Path(bundle), load_public_key(state.public_key)).ok
    assert "| compromised-credentials | stolen-key | yes |" in stdout


def test_a_step_waiting_for_approval_stops_the_run_and_is_recorded(
    serve_asgi: ServeAsgi, gateway_state: Any, tmp_path: Path
) -> None:
    state, config = gateway_state
    book = builtin_playbooks()["data-leak"]
    incident = Incident("inc-wait", book.name, subject="alice", model="digits")
    body = {"inputs": sklearn_dataset("digits", "test", seed=0).x[:1].tolist()}
    with serve_asgi(create_app(config)) as port:
        url = f"http://127.0.0.1:{port}"
        client = AdminClient(url, state.keys["admin"])
        runner = PlaybookRunner(client, out=tmp_path)
        report = runner.run(book.model_copy(update={"steps": book.steps[1:]}), incident)  # no evidence source here
        status = httpx.post(f"{url}/v1/models/digits/predict", json=body, headers=_bearer(state.keys["alice"]))
        client.close()
    assert report.awaiting_approval == "privacy" and not report.ok
    assert status.status_code == 200  # nothing was revoked
    engine = existing_log(state.db_url)
    notes = [
        e for e in _events(engine) if e.get("action") == "incident.step" and e["incident"]["incident"] == "inc-wait"
    ]
    engine.dispose()
    assert [n["incident"]["status"] for n in notes] == ["skipped"]
    assert notes[0]["incident"]["detail"] == {"waiting_for": "privacy"}


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _events(engine: Any) -> list[dict[str, Any]]:
    import sqlalchemy as sa

    from modelshield.audit import schema

    with engine.connect() as conn:
        return [json.loads(e) for (e,) in conn.execute(sa.select(schema.records.c.event))]


@pytest.mark.slow
def test_every_shipped_playbook_drill_on_the_demo_gateway_contains_its_incident(
    run_main: RunMain, tmp_path: Path
) -> None:
    code, stdout, stderr = run_main(
        "incident", "drill", "all", "--demo", "--state-dir", str(tmp_path / "state"), "--out", str(tmp_path / "out")
    )
    assert code == 0, stdout + stderr
    results = json.loads((tmp_path / "out" / "drill.json").read_text())
    assert len(results) == 5 and all(r["ok"] for r in results)
