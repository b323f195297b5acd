"""Sharding by sample range, without a cluster: the ranges, the merge, and the per-range worker code put back
together give exactly the single-process report; bad ``--ray`` addresses are refused in one line."""

from __future__ import annotations

import json
import socket
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from torch import Tensor

from modelshield.assess.results import AssessmentResult, AttackError
from modelshield.assess.runner import AssessConfig, assess
from modelshield.assess.sharded import ShardWorker, check_address, merge_shards, shard_ranges
from modelshield.attacks.base import Attack, AttackResult
from modelshield.core.datasets import Dataset
from modelshield.core.errors import InputError
from modelshield.core.loading import save_torch_model
from modelshield.core.model import TorchModel
from modelshield.demo import DEMO_INPUT_SHAPE, DEMO_NUM_CLASSES
from modelshield.integrity.safe_load import load_model

if TYPE_CHECKING:
    from conftest import RunMain

CHEAP = dict(
    eps_linf=(0.05, 0.1),
    eps_l2=(1.0,),
    gating_eps=0.1,
    attacks=("fgsm", "pgd", "square", "hopskipjump"),
    pgd_steps=5,
    square_queries=60,
    hsj_budgets=(30,),
    hsj_samples=12,
    batch_size=40,
    seed=5,
)


def comparable(result: AssessmentResult) -> dict[str, Any]:
    """The report minus what no two runs share: when it was made and how long each attack took."""
    data = json.loads(result.model_dump_json())
    data.pop("created")
    for rec in data["attacks"]:
        rec.pop("seconds")
    return data


def weights_loader(model: TorchModel, folder: Path) -> partial[Any]:
    """How a worker gets the digits CNN: from a safetensors file and its architecture, never as an object."""
    path = folder / "digits.safetensors"
    save_torch_model(model.module, path)
    arch = "modelshield.demo:DigitsCNN"
    return partial(load_model, str(path), arch=arch, input_shape=DEMO_INPUT_SHAPE, num_classes=DEMO_NUM_CLASSES)


class InProcessShards:
    """The sharded runner's worker code and merge, with the workers as plain objects instead of Ray actors."""

    def __init__(self, workers: list[ShardWorker], batch_size: int) -> None:
        self.workers, self.batch_size = workers, batch_size

    def __call__(self, attack: Attack, x: Tensor, y: Tensor) -> AttackResult | AttackError:
        ranges = shard_ranges(len(x), len(self.workers), self.batch_size)
        xs, ys = x.numpy(), y.numpy()
        return merge_shards(
            [w.run(attack, xs, ys, r.start, r.stop) for w, r in zip(self.workers, ranges, strict=False)]
        )


def test_ranges_are_contiguous_and_on_batch_boundaries() -> None:
    assert shard_ranges(110, 2, 40) == [range(0, 80), range(80, 110)]  # 3 batches: 2 + 1
    assert shard_ranges(100, 2, 512) == [range(0, 50), range(50, 100)]  # one batch: cut inside it
    assert shard_ranges(3, 8, 512) == [range(0, 1), range(1, 2), range(2, 3)]
    for n, k, b in ((1000, 3, 64), (7, 2, 2), (450, 4, 100)):
        ranges = shard_ranges(n, k, b)
        assert ranges[0].start == 0 and ranges[-1].stop == n and len(ranges) <= k
        assert all(a.stop == b_.start for a, b_ in zip(ranges, ranges[1:], strict=False))


def test_shards_put_back_together_give_the_single_process_report(
    digits_model: TorchModel, digits_test: Dataset, tmp_path: Path
) -> None:
    data = digits_test.subset(110, seed=2)  # 2.75 batches of 40: the shards are 80 and 30 samples
    cfg = AssessConfig(**CHEAP)  # type: ignore[arg-type]
    single, _ = assess(digits_model, data, cfg)
    loader = weights_loader(digits_model, tmp_path)
    workers = [ShardWorker(loader, 1, cfg.batch_size, cfg.seed) for _ in range(2)]
    sharded, _ = assess(digits_model, data, AssessConfig(**CHEAP), runner=InProcessShards(workers, 40))  # type: ignore[arg-type]
    assert comparable(sharded) == comparable(single)
    assert {r.attack for r in single.attacks} == {"fgsm", "pgd", "square", "hopskipjump"}
    square = next(r for r in single.attacks if r.attack == "square")
    assert square.queries and square.samples == 110


def test_the_first_ranges_error_is_the_one_reported() -> None:
    err = AttackError(attack="pgd", norm="linf", eps=0.1, kind="error", error="ConnectionError", message="quota")
    later = err.model_copy(update={"message": "later"})
    assert merge_shards([err, later]) == err


@pytest.mark.parametrize("address", ["local", "auto", "ray://10.0.0.5:10001", "head-node:6379"])
def test_ray_addresses_taken(address: str) -> None:
    assert check_address(address) == address


@pytest.mark.parametrize("address", ["", "locall", "http://head:8265", "ray://head", "head node:1"])
def test_bad_ray_address_is_refused(address: str) -> None:
    with pytest.raises(InputError, match="not a Ray address"):
        check_address(address)


def test_cli_bad_ray_address_is_one_line_exit_2(run_main: RunMain, tmp_path: Path) -> None:
    code, _out, err = run_main("assess", "--demo", "--ray", "http://head:8265", "--out", str(tmp_path))
    assert code == 2
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "not a Ray address" in lines[0] and "Traceback" not in err


def test_cli_ray_address_nothing_answers_at_is_one_line_exit_2(run_main: RunMain, tmp_path: Path) -> None:
    with socket.socket() as sock:  # a loopback port that was free a moment ago: nothing listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    code, _out, err = run_main("assess", "--demo", "--ray", f"ray://127.0.0.1:{port}", "--out", str(tmp_path))
    assert code == 2
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "nothing answers there" in lines[0]
