"""The gateway over real sockets, every control on: what a client, an attacker and an auditor each see."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from modelshield.core.datasets import sklearn_dataset
from tests.serve.server.conftest import ARCH, make_state, running, secure_config

ROLES = {
    "alice": ["predictor"],
    "auditor": ["auditor"],
    "root": ["admin"],
}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture(scope="module")
def digits_x() -> np.ndarray:
    return sklearn_dataset("digits", "test", seed=0).x[:64].numpy()


@pytest.fixture(scope="module")
def gateway(weights: tuple[Path, str], tmp_path_factory: pytest.TempPathFactory) -> Any:
    path, digest = weights
    state = make_state(tmp_path_factory.mktemp("gw"), ROLES)
    model = {"path": str(path), "digest": digest, **ARCH}
    config = secure_config(state, {"demo": model, "vault": {**model, "sensitivity": "restricted", "tenant": "bank"}})
    with running(config) as url, httpx.Client(base_url=url, timeout=30) as client:
        yield client, state, url


def predict(client: httpx.Client, key: str | None, body: Any, model: str = "demo", **kw: Any) -> httpx.Response:
    headers = bearer(key) if key else {}
    if isinstance(body, (bytes, str)):
        headers = {"Content-Type": "application/json", **headers}
        return client.post(f"/v1/models/{model}/predict", content=body, headers={**headers, **kw.pop("headers", {})})
    return client.post(f"/v1/models/{model}/predict", json=body, headers={**headers, **kw.pop("headers", {})})


def test_predict_happy_path_speaks_the_remote_model_protocol(gateway, digits_x, weights):
    client, state, _ = gateway
    r = predict(client, state.keys["alice"], {"inputs": digits_x[:3].tolist()})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == "demo" and body["digest"] == weights[1]
    probs = np.array(body["probabilities"])
    assert probs.shape == (3, 10) and np.allclose(probs.sum(axis=1), 1.0, atol=1e-4)
    assert body["predictions"] == probs.argmax(axis=1).tolist()
    assert "labels" not in body and "logits" not in body  # RemoteModel needs exactly one kind
    assert r.headers["x-request-id"] == body["request_id"]


def test_authentication_failures_are_401(gateway, digits_x):
    client, state, _ = gateway
    body = {"inputs": digits_x[:1].tolist()}
    assert predict(client, None, body).status_code == 401
    assert predict(client, "msk_0000_notakey", body).status_code == 401
    forged = state.keys["alice"][:-4] + "aaaa"
    r = predict(client, forged, body)
    assert r.status_code == 401 and "error" in r.json() and forged not in r.text
    assert r.headers["www-authenticate"].startswith("Bearer")


def test_policy_denials_are_403(gateway, digits_x):
    client, state, _ = gateway
    body = {"inputs": digits_x[:1].tolist()}
    assert predict(client, state.keys["auditor"], body).status_code == 403  # auditors do not predict
    assert predict(client, state.keys["alice"], body, model="vault").status_code == 403  # other tenant, restricted
    assert client.get("/v1/admin/audit/verify", headers=bearer(state.keys["alice"])).status_code == 403


def test_validation_refusals(gateway, digits_x):
    client, state, _ = gateway
    key = state.keys["alice"]
    bad_shape = predict(client, key, {"inputs": digits_x[:1, :, :4].tolist()})
    assert bad_shape.status_code == 422 and "shape" in bad_shape.json()["error"]
    nan = json.dumps({"inputs": digits_x[:1].tolist()}).replace("0.0", "NaN", 1)
    assert predict(client, key, nan, headers={"Content-Type": "application/json"}).status_code == 400
    out_of_range = predict(client, key, {"inputs": (digits_x[:1] * 300).tolist()})
    assert out_of_range.status_code == 422 and "bounds" in out_of_range.json()["error"]
    too_big = predict(client, key, b'{"inputs": [' + b"0," * 40_000 + b"0]}")
    assert too_big.status_code == 413
    too_many = predict(client, key, {"inputs": np.repeat(digits_x[:1], 65, axis=0).tolist()})
    assert too_many.status_code == 413
    nested = predict(client, key, b"[" * 5000 + b"]" * 5000)
    assert nested.status_code == 400 and "nested" in nested.json()["error"]
    assert predict(client, key, b"not json").status_code == 400


def test_path_traversal_in_model_names_finds_nothing(gateway, digits_x):
    client, state, _ = gateway
    body = {"inputs": digits_x[:1].tolist()}
    for name in ("..%2F..%2Fetc%2Fpasswd", "demo%2F..%2Fvault", "%2e%2e", "DEMO", "demo%00"):
        r = client.post(f"/v1/models/{name}/predict", json=body, headers=bearer(state.keys["alice"]))
        assert r.status_code in (404, 405), (name, r.status_code)
        assert "root:" not in r.text
    # a client that normalises demo/../vault asks for vault, which the policy still refuses
    assert (
        client.post("/v1/models/demo/../vault/predict", json=body, headers=bearer(state.keys["alice"])).status_code
        == 403
    )


def test_every_2xx_is_audited_and_the_log_verifies(gateway, digits_x):
    client, state, _ = gateway
    ids = [
        predict(client, state.keys["alice"], {"inputs": digits_x[i : i + 1].tolist()}).json()["request_id"]
        for i in range(5)
    ]
    r = client.get("/v1/admin/audit/verify", headers=bearer(state.keys["auditor"]))
    assert r.status_code == 200 and r.json()["ok"] is True, r.text
    events = {e["request_id"]: e for e in state.audit_events() if "request_id" in e}
    for rid in ids:
        event = events[rid]
        assert event["decision"] == "allow" and event["status_code"] == 200 and len(event["input_digest"]) == 64
        assert "inputs" not in event and event["actor"]["subject"] == "alice"
    assert any(e["status_code"] == 401 and e["decision"] == "deny" for e in events.values())


def test_metrics_count_requests_and_denials(gateway, digits_x):
    client, state, _ = gateway
    predict(client, None, {"inputs": digits_x[:1].tolist()})
    text = client.get("/metrics").text
    assert 'modelshield_requests_total{model="demo",route="predict",status="200"' in text
    assert 'modelshield_denials_total{kind="authn"}' in text
    assert 'modelshield_validation_failures_total{status="422"}' in text
    assert "modelshield_audit_append_seconds_bucket" in text


def test_openapi_declares_every_status_the_predict_route_answers(gateway):
    client, _, _ = gateway
    spec = client.get("/openapi.json").json()
    op = spec["paths"]["/v1/models/demo/predict"]["post"]
    assert {"200", "400", "401", "403", "413", "422", "429", "503"} <= set(op["responses"])
    items = op["requestBody"]["content"]["application/json"]["schema"]["properties"]["inputs"]["items"]
    assert items["minItems"] == 1 and items["items"]["items"]["items"]["maximum"] == 1.0


def test_assess_red_teams_the_gateway(gateway, tmp_path, run_main):
    _, state, url = gateway
    code, _, err = run_main(
        "assess", "--model", f"{url}/v1/models/demo/predict", "--data", "sklearn:digits",
        "--header", f"Authorization: Bearer {state.keys['alice']}", "--attacks", "square", "--samples", "4",
        "--queries", "10", "--eps", "0.1", "--out", str(tmp_path / "a"),
    )  # fmt: skip
    assert code in (0, 1), err[-2000:]
    report = json.loads((tmp_path / "a" / "report.json").read_text())
    assert report["attacks"] and state.keys["alice"] not in (tmp_path / "a" / "report.json").read_text()


def test_rate_limit_answers_429_with_retry_after(weights, tmp_path, digits_x):
    path, digest = weights
    state = make_state(tmp_path, {"bob": ["predictor"]})
    config = secure_config(
        state,
        {"demo": {"path": str(path), "digest": digest, **ARCH}},
        rate_limits={"per_identity_rps": 1.0, "per_identity_burst": 3},
    )
    with running(config) as url, httpx.Client(base_url=url) as client:
        codes = [predict(client, state.keys["bob"], {"inputs": digits_x[:1].tolist()}) for _ in range(5)]
    assert [r.status_code for r in codes[:3]] == [200, 200, 200]
    assert codes[3].status_code == 429 and 1 <= int(codes[3].headers["retry-after"]) <= 2


def test_tampered_model_stops_serving_and_raises_a_security_event(weights, tmp_path, digits_x):
    path, _ = weights
    copy = tmp_path / "model.safetensors"
    copy.write_bytes(path.read_bytes())
    from modelshield.serve.runtime import file_digest

    state = make_state(tmp_path / "s", {"carol": ["predictor"]})
    config = secure_config(state, {"demo": {"path": str(copy), "digest": file_digest(copy), **ARCH}})
    body = {"inputs": digits_x[:1].tolist()}
    with running(config) as url, httpx.Client(base_url=url) as client:
        assert predict(client, state.keys["carol"], body).status_code == 200
        data = bytearray(copy.read_bytes())
        data[-1] ^= 1  # one bit in the weights
        copy.write_bytes(bytes(data))
        deadline = time.monotonic() + 10
        while client.get("/readyz").status_code == 200 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert client.get("/readyz").status_code == 503
        r = predict(client, state.keys["carol"], body)
        assert r.status_code == 503 and "integrity" in r.json()["error"]
    events = [e for e in state.audit_events() if e["action"] == "security.model_integrity"]
    assert len(events) == 1 and events[0]["model"] == "demo"
