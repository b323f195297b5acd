"""Sharded assessments of a guarded endpoint: the abstentions the workers' copies of ``RemoteModel`` see are
counted, and each worker reads labels as the driver's copy would, so the report (``model.abstained`` included)
is the single process's. The demo gateway runs in a child process (its guard abstains on inputs it flags); the
default-run test puts the shards together in this process, the slow one on a local Ray cluster."""

from __future__ import annotations

from functools import partial
from typing import Any

import pytest
import torch
from test_ray_shards import comparable
from torch import Tensor

from modelshield.assess.results import AttackError
from modelshield.assess.runner import AssessConfig, assess
from modelshield.assess.sharded import RayShards, ShardWorker, merge_shards, run_shards, shard_ranges
from modelshield.attacks.base import Attack, AttackResult
from modelshield.core.adapters import RemoteModel
from modelshield.core.adapters.remote import ABSTAIN
from modelshield.core.datasets import Dataset, sklearn_dataset

CONFIG = dict(eps_linf=(0.2,), eps_l2=(), gating_eps=0.2, attacks=("square",), square_queries=8, batch_size=8, seed=5)
SAMPLES = 16  # the demo gateway serves 50 samples a second per key: 16 × (1 + 8 queries) takes seconds


def _loader(endpoint: tuple[str, str]) -> partial[RemoteModel]:
    """How a worker gets the endpoint: a RemoteModel built from plain values (as ``assess --model URL`` does)."""
    url, key = endpoint
    return partial(
        RemoteModel,
        url,
        input_shape=(1, 8, 8),
        num_classes=10,
        headers={"X-API-Key": key},
        abstentions="count",
        max_retries=8,  # waits out the gateway's rate limit (deterministic answers: a retry changes nothing)
    )


class InProcessShards:
    """RayShards' worker code, merge and abstention count, with the workers as plain objects."""

    def __init__(self, workers: list[ShardWorker], driver: RemoteModel, batch_size: int) -> None:
        self.workers, self.driver, self.batch_size = workers, driver, batch_size
        self.launched = 0

    def __call__(self, attack: Attack, x: Tensor, y: Tensor) -> AttackResult | AttackError:
        ranges = shard_ranges(len(x), len(self.workers), self.batch_size)

        def launch(i: int, r: range, abstained: int) -> Any:
            self.launched += 1
            return self.workers[i].run(attack, x.numpy(), y.numpy(), r.start, r.stop, abstained)

        return merge_shards(run_shards(launch, list, ranges, self.driver))


@pytest.fixture(scope="module")
def digits16(guarded_demo_gateway: tuple[str, str]) -> Dataset:
    """16 test digits the guard answers on: its first abstention comes inside the sharded attack, where a worker
    on a later range cannot know of it (the hard case: that range runs again)."""
    test = sklearn_dataset("digits", "test", seed=0)
    probe = _loader(guarded_demo_gateway)()
    answered = torch.nonzero(probe.predict(test.x[:64]) != ABSTAIN).squeeze(1)[:SAMPLES]
    probe.close()
    return Dataset(test.x[answered], test.y[answered], test.name, test.bounds)


@pytest.fixture(scope="module")
def single(guarded_demo_gateway: tuple[str, str], digits16: Dataset) -> dict[str, Any]:
    model = _loader(guarded_demo_gateway)()
    result, _ = assess(model, digits16, AssessConfig(**CONFIG))  # type: ignore[arg-type]
    model.close()
    return comparable(result)


def test_sharded_workers_abstentions_are_counted_as_in_one_process(
    guarded_demo_gateway: tuple[str, str],
    digits16: Dataset,
    single: dict[str, Any],
) -> None:
    driver = _loader(guarded_demo_gateway)()
    workers = [ShardWorker(_loader(guarded_demo_gateway), 1, 8, 5) for _ in range(2)]
    shards = InProcessShards(workers, driver, 8)
    sharded, _ = assess(driver, digits16, AssessConfig(**CONFIG), runner=shards)  # type: ignore[arg-type]
    assert single["model"]["abstained"] > 0 and single["attacks"][0]["queries"] > 0
    assert shards.launched == 3  # two ranges, and the second once more: the first abstention came in the first
    assert comparable(sharded) == single  # model.abstained, MS-ASSESS-002 and the attack records alike
    assert any(f["id"] == "MS-ASSESS-002" for f in single["findings"])


@pytest.mark.slow
def test_ray_workers_abstentions_are_counted_as_in_one_process(
    guarded_demo_gateway: tuple[str, str],
    digits16: Dataset,
    single: dict[str, Any],
) -> None:
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        driver = _loader(guarded_demo_gateway)()
        with RayShards(
            _loader(guarded_demo_gateway), address="local", workers=2, batch_size=8, seed=5, driver=driver
        ) as shards:
            sharded, _ = assess(driver, digits16, AssessConfig(**CONFIG), runner=shards)  # type: ignore[arg-type]
    finally:
        ray.shutdown()
    assert comparable(sharded) == single
