"""Rate limits charged per sample through a real gateway: a batch of n spends n tokens, so batching cannot
multiply a caller's queries; a batch over the burst is a one-line 413; ``cost = "requests"`` keeps the old rule;
with Redis the charge is shared by two gateways on one bucket."""

from __future__ import annotations

import secrets
from pathlib import Path

import httpx
import numpy as np
import pytest

from modelshield.core.datasets import sklearn_dataset
from tests.serve.server.conftest import ARCH, make_state, running, secure_config

REDIS = "redis://127.0.0.1:6379/0"


@pytest.fixture(scope="module")
def batch() -> list[list[list[list[float]]]]:
    x: np.ndarray = sklearn_dataset("digits", "test", seed=0).x[:64].numpy()
    return x.tolist()


def _post(client: httpx.Client, key: str, inputs: list[object]) -> httpx.Response:
    return client.post("/v1/models/demo/predict", json={"inputs": inputs}, headers={"Authorization": f"Bearer {key}"})


def test_a_batch_spends_one_token_per_sample_and_a_refusal_says_what_is_left(
    weights: tuple[Path, str], tmp_path: Path, batch: list[object]
) -> None:
    path, digest = weights
    state = make_state(tmp_path, {"thief": ["predictor"]})
    limits = {"per_identity_rps": 0.1, "per_identity_burst": 40}  # slow refill: the test sees the bucket drain
    config = secure_config(state, {"demo": {"path": str(path), "digest": digest, **ARCH}}, rate_limits=limits)
    with running(config) as url, httpx.Client(base_url=url, timeout=20) as client:
        key = state.keys["thief"]
        too_big = _post(client, key, batch[:41])
        assert too_big.status_code == 413
        assert "send at most 40 per request" in too_big.json()["error"]
        assert _post(client, key, batch[:32]).status_code == 200  # 40 - 1 (the 413's first sample) - 32 = 7 left
        refused = _post(client, key, batch[:16])
        assert refused.status_code == 429
        message = refused.json()["error"]
        assert "this batch of 16 samples exceeds the 7 left" in message, message
        # the refused request's first sample was spent (6 left): Retry-After is until 16 are there, (16 - 6) / 0.1
        assert 95 <= int(refused.headers["retry-after"]) <= 101
        assert [_post(client, key, batch[:1]).status_code for _ in range(8)] == [200] * 6 + [429] * 2
    events = [e for e in state.audit_events() if e.get("action") == "predict"]
    assert [e["status_code"] for e in events] == [413, 200, 429] + [200] * 6 + [429] * 2
    assert "exceeds the 7 left" in events[2]["reason"]


def test_cost_requests_charges_one_token_per_request(
    weights: tuple[Path, str], tmp_path: Path, batch: list[object]
) -> None:
    path, digest = weights
    state = make_state(tmp_path, {"caller": ["predictor"]})
    limits = {"cost": "requests", "per_identity_rps": 0.5, "per_identity_burst": 3}
    config = secure_config(state, {"demo": {"path": str(path), "digest": digest, **ARCH}}, rate_limits=limits)
    with running(config) as url, httpx.Client(base_url=url, timeout=20) as client:
        codes = [_post(client, state.keys["caller"], batch[:64]).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]


def test_shared_redis_bucket_charges_samples_across_two_gateways(
    weights: tuple[Path, str], tmp_path: Path, batch: list[object]
) -> None:
    import redis

    redis.Redis.from_url(REDIS).ping()  # the shared Redis must be up: fail, never skip
    path, digest = weights
    state = make_state(tmp_path, {"spread": ["predictor"]})
    limits = {
        "per_identity_rps": 0.2,
        "per_identity_burst": 100,
        "redis_url": REDIS,
        "redis_prefix": f"test-cost-{secrets.token_hex(4)}",
    }
    config = secure_config(state, {"demo": {"path": str(path), "digest": digest, **ARCH}}, rate_limits=limits)
    key = state.keys["spread"]
    with running(config) as a, running(config) as b:
        with httpx.Client(base_url=a, timeout=20) as ca, httpx.Client(base_url=b, timeout=20) as cb:
            codes = [_post(c, key, batch[:30]).status_code for c in (ca, cb, ca, cb)]
    assert codes == [200, 200, 200, 429]  # 3 × 30 samples out of one 100-token bucket, wherever they land
