"""End to end through the real gateway on loopback: an attacker with an API key and ``RemoteModel``.

JBDA steals the served digits CNN and the gateway's extraction signal flags the thief (metric and audit
event); another caller runs Knockoff into the daily quota and gets a result that stops at exactly the
quota, with the 429 recorded as a typed refusal and the model stolen until then.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
import torch

from modelshield.attacks.extraction import EvalSet, JacobianAugmentation, KnockoffNets, natural_patches
from modelshield.core.adapters import RemoteModel, TorchModel
from modelshield.core.datasets import sklearn_dataset
from modelshield.core.loading import save_torch_model
from modelshield.demo import DEMO_INPUT_SHAPE, DEMO_NUM_CLASSES, train_digits_cnn
from modelshield.serve.runtime import file_digest
from tests.serve.server.conftest import ARCH, make_state, running, secure_config

QUOTA = 480


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, TorchModel]:
    """The demo CNN, briefly trained, as the gateway serves it (weights file, digest) and as a local copy."""
    net = train_digits_cnn(sklearn_dataset("digits", "train", seed=0), epochs=4)
    path = tmp_path_factory.mktemp("victim") / "digits.safetensors"
    save_torch_model(net, path)
    return path, file_digest(path), TorchModel(net, input_shape=DEMO_INPUT_SHAPE, num_classes=DEMO_NUM_CLASSES)


def _flags(client: httpx.Client) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith('modelshield_extraction_flags_total{model="demo"}'):
            return float(line.split()[-1])
    return 0.0


def test_extract_through_gateway_is_flagged_and_stops_at_the_quota(
    served: tuple[Path, str, TorchModel], tmp_path: Path
) -> None:
    path, digest, local = served
    state = make_state(tmp_path, {"thief": ["predictor"], "greedy": ["predictor"]})
    config = secure_config(
        state,
        {"demo": {"path": str(path), "digest": digest, **ARCH}},
        rate_limits={"daily_quota": QUOTA, "per_identity_burst": 1000},  # limits count samples: the quota stops it
    )
    train, test = sklearn_dataset("digits", "train"), sklearn_dataset("digits", "test")
    evaluation = EvalSet(test.x, test.y, victim_labels=local.predict(test.x))  # measured locally: no gateway queries
    seed_set = torch.cat([train.x[train.y == c][:10] for c in range(10)])

    def remote(url: str, who: str) -> RemoteModel:
        return RemoteModel(
            f"{url}/v1/models/demo/predict",
            input_shape=DEMO_INPUT_SHAPE,
            num_classes=DEMO_NUM_CLASSES,
            headers={"Authorization": f"Bearer {state.keys[who]}"},
            batch_size=32,
            output="probabilities",  # no capability probe: every sample charged to the quota is an attack query
        )

    with running(config) as url, httpx.Client(base_url=url, timeout=30) as client:
        thief = remote(url, "thief")
        jbda = JacobianAugmentation(seed_set, iterations=4, kappa=100, epochs=10)(
            thief, budget=460, evaluation=evaluation
        )
        assert jbda.queries == 460 and jbda.stop_reason == "budget"
        assert jbda.fidelity is not None and jbda.fidelity >= 0.8
        deadline = time.monotonic() + 5  # the signal is scored after each response is sent
        while _flags(client) < 1.0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _flags(client) == 1.0

        greedy = remote(url, "greedy")
        pool, _ = natural_patches(1000, DEMO_INPUT_SHAPE, seed=0)
        knockoff = KnockoffNets(pool, rounds=5, epochs=5, batch_size=32)(greedy, budget=960, evaluation=evaluation)
        thief.close()
        greedy.close()
    assert knockoff.stop_reason == "refused" and knockoff.queries == QUOTA
    assert knockoff.refusal is not None and knockoff.refusal.kind == "rate_limited" and knockoff.refusal.status == 429
    assert knockoff.curve[-1].queries == QUOTA and knockoff.stolen.predict(test.x[:4]).shape == (4,)
    assert knockoff.to_dict()["refusal"]["status"] == 429
    flags = [e for e in state.audit_events() if e.get("action") == "security.extraction"]
    assert [f["actor"]["subject"] for f in flags] == ["thief"]  # knockoff on natural images went unflagged
