"""The extraction signal against real attacks through a real gateway (digits CNN, loopback):

- Knockoff Nets on natural-image patches (another data set, natural-looking queries) is flagged by the
  off-distribution share — the caller's queries lie beyond the reference digits' nearest-neighbour radius —
  while an honest caller sending test digits at the same time is not;
- a JBDA campaign split round-robin over five keys of one tenant (or five keys from one client address) raises
  the signal on the tenant's (address's) pooled window, with each key's own score in the event.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
import torch

from modelshield.attacks.extraction import JacobianAugmentation, KnockoffNets, natural_patches
from modelshield.core.adapters import RemoteModel
from modelshield.core.datasets import sklearn_dataset
from modelshield.core.model import Model
from modelshield.demo import DEMO_INPUT_SHAPE, DEMO_NUM_CLASSES
from modelshield.serve.apikeys import ApiKeyStore
from tests.serve.server.conftest import ARCH, State, make_state, running, secure_config

LIMITS = {"per_identity_rps": 10_000, "per_identity_burst": 10_000}


def _remote(url: str, key: str, batch_size: int = 16) -> RemoteModel:
    return RemoteModel(
        f"{url}/v1/models/demo/predict",
        input_shape=DEMO_INPUT_SHAPE,
        num_classes=DEMO_NUM_CLASSES,
        headers={"Authorization": f"Bearer {key}"},
        batch_size=batch_size,
        output="probabilities",
    )


class RoundRobin(Model):
    """One attacker behind several keys: each batch of 8 goes out under the next key."""

    def __init__(self, victims: list[RemoteModel]) -> None:
        super().__init__()
        self.victims, self.turn = victims, 0
        self.num_classes, self.input_shape = DEMO_NUM_CLASSES, DEMO_INPUT_SHAPE

    def _scores(self, x: torch.Tensor) -> torch.Tensor:
        out = []
        for chunk in x.split(8):
            victim = self.victims[self.turn % len(self.victims)]
            self.turn += 1
            out.append(victim.predict_proba(chunk).clamp_min(1e-12).log())
        return torch.cat(out)


def _flags(state: State) -> list[dict[str, Any]]:
    return [e for e in state.audit_events() if e.get("action") == "security.extraction"]


def _tenant_keys(state: State, tenant: str | None, n: int) -> list[str]:
    store = ApiKeyStore.open(state.db_url, pepper_file=state.pepper)
    try:
        return [
            store.create(
                f"{tenant or 'anon'}-{i}", ["predictor"], tenant=tenant, attributes={"clearance": "internal"}
            ).plaintext
            for i in range(n)
        ]
    finally:
        store.close()


def test_knockoff_on_natural_patches_is_flagged_and_honest_digits_are_not(
    weights: tuple[Path, str], tmp_path: Path
) -> None:
    path, digest = weights
    state = make_state(tmp_path, {"honest": ["predictor"], "knockoff": ["predictor"]})
    config = secure_config(
        state,
        {"demo": {"path": str(path), "digest": digest, **ARCH}},
        rate_limits={**LIMITS, "extraction_reference": {"demo": "sklearn:digits:train"}},
    )
    digits = sklearn_dataset("digits", "test", seed=0).x
    pool, _ = natural_patches(400, DEMO_INPUT_SHAPE, seed=1)
    with running(config) as url:
        honest = _remote(url, state.keys["honest"], batch_size=10)
        honest.predict_proba(digits[:300])  # 300 honest queries, 10 a request
        thief = _remote(url, state.keys["knockoff"])
        result = KnockoffNets(pool, rounds=2, epochs=2, batch_size=16)(thief, budget=128)
        assert result.queries == 128
        with httpx.Client(base_url=url) as client:  # the signal is scored after each response: wait for the last
            client.get("/healthz")
    flags = _flags(state)
    assert [f["actor"]["subject"] for f in flags] == ["knockoff"], flags
    evidence = flags[0]["extraction"]
    assert evidence["scope"] == "identity" and evidence["off_distribution_share"] >= 0.9
    assert evidence["queries"] <= 64  # flagged within the first rounds of queries
    assert evidence["near_duplicate_share"] < 0.3  # the old signals alone would not have caught it


@pytest.mark.parametrize("scope", ["tenant", "address"])
def test_jbda_split_over_five_keys_is_flagged_on_the_pooled_window(
    weights: tuple[Path, str], tmp_path: Path, scope: str
) -> None:
    path, digest = weights
    state = make_state(tmp_path, {})
    config = secure_config(
        state,
        {"demo": {"path": str(path), "digest": digest, **ARCH}},
        rate_limits={**LIMITS, "extraction_group_by": [scope]},
    )
    keys = _tenant_keys(state, "acme" if scope == "tenant" else None, 5)
    train = sklearn_dataset("digits", "train")
    seeds = torch.cat([train.x[train.y == c][:10] for c in range(10)])
    with running(config) as url:
        victims = [_remote(url, k) for k in keys]
        JacobianAugmentation(seeds, iterations=4, kappa=100, epochs=2)(RoundRobin(victims), budget=460)
        with httpx.Client(base_url=url) as client:
            client.get("/healthz")
    flags = _flags(state)
    pooled = [f["extraction"] for f in flags if f["extraction"]["scope"] == scope]
    assert len(pooled) == 1, [f["extraction"] for f in flags]
    event = pooled[0]
    assert event["key"] == ("acme" if scope == "tenant" else "127.0.0.1")
    members = event["members"]
    assert len(members) == 5 and all(s < event["extraction_score"] for s in members.values()), event
