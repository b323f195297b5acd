"""Sharded assessments on a real local Ray cluster with two workers: the same report as one process.

One cluster per module (``ray.init(num_cpus=2, include_dashboard=False)``); ``--ray local`` in the CLI test
uses it, since this process is already its driver. Ray's start-up alone takes 20 s or more on a loaded
2-core machine, so the module is left out of the default run (``pytest -m slow``); the sharding itself is
tested without a cluster in ``test_ray_shards.py``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from test_ray_shards import CHEAP, comparable, weights_loader

from modelshield.assess.runner import AssessConfig, assess
from modelshield.assess.sharded import RayShards
from modelshield.core.datasets import Dataset
from modelshield.core.errors import DependencyError
from modelshield.core.model import TorchModel
from modelshield.integrity.safe_load import load_model

if TYPE_CHECKING:
    from conftest import RunMain

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()


def test_two_ray_workers_give_the_single_process_report(
    cluster: Any, digits_model: TorchModel, digits_test: Dataset, tmp_path: Path
) -> None:
    data = digits_test.subset(110, seed=2)  # 2.75 batches of 40
    single, _ = assess(digits_model, data, AssessConfig(**CHEAP))  # type: ignore[arg-type]
    with RayShards(weights_loader(digits_model, tmp_path), address="local", workers=2, batch_size=40, seed=5) as ray:
        sharded, _ = assess(digits_model, data, AssessConfig(**CHEAP), runner=ray)  # type: ignore[arg-type]
    assert comparable(sharded) == comparable(single)
    assert cluster.is_initialized()  # the module's cluster is not ended by a runner that did not start it


def _report(out: Path) -> dict[str, Any]:
    data = json.loads((out / "report.json").read_text())
    for key in ("created", "command"):
        data.pop(key)
    data["model"].pop("path")
    for rec in data["attacks"]:
        rec.pop("seconds")
    return data


def test_cli_ray_local_writes_the_single_process_report(cluster: Any, run_main: RunMain, tmp_path: Path) -> None:
    args = ["assess", "--demo", "--samples", "110", "--batch-size", "40", "--attacks", "fgsm,pgd,square"]
    args += ["--eps", "0.05,0.1", "--steps", "5", "--queries", "60"]
    code, _, err = run_main(*args, "--out", str(tmp_path / "one"))
    assert code == 0, err
    code, _, err = run_main(*args, "--ray", "local", "--out", str(tmp_path / "ray"))
    assert code == 0, err
    assert _report(tmp_path / "ray") == _report(tmp_path / "one")
    assert "--ray local" in json.loads((tmp_path / "ray" / "report.json").read_text())["command"]


def test_a_worker_that_cannot_load_the_model_fails_in_one_line(cluster: Any, tmp_path: Path) -> None:
    missing = partial(load_model, str(tmp_path / "gone.safetensors"), arch="modelshield.demo:DigitsCNN")
    with pytest.raises(DependencyError, match="could not load the model") as info:
        RayShards(missing, address="local", workers=2).__enter__()
    assert "\n" not in str(info.value)
