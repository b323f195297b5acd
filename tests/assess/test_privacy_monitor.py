"""`assess --privacy` watches what its DP twin's training reads: an honest twin raises no alarm, a replaying
sampler does; through the CLI the summary lands beside the report (OUT/data-access.json) and an alarm exits 1."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from modelshield.assess.privacy import DEMO_BATCH, train_private
from modelshield.core.datasets import sklearn_dataset
from modelshield.monitor.training import DataAccessMonitor
from modelshield.privacy.dp import training as dp_training

RunMain = Callable[..., tuple[int, str, str]]  # the root conftest's run_main fixture


def _replaying(monkeypatch: pytest.MonkeyPatch) -> None:
    """A sampler that draws its Poisson batches from one fixed third of the data (a subset replayed)."""
    honest = dp_training.poisson_batch

    def tampered(n: int, q: float, generator: torch.Generator) -> torch.Tensor:
        return honest(n // 3, min(1.0, 3 * q), generator)

    monkeypatch.setattr(dp_training, "poisson_batch", tampered)


def test_the_dp_twin_is_watched_and_an_honest_one_raises_no_alarm() -> None:
    train = sklearn_dataset("digits", "train", seed=0).subset(800)
    monitor = DataAccessMonitor(None, DEMO_BATCH, sampling="poisson")
    train_private(train.x, train.y, 0, data_observer=monitor)
    summary = monitor.summary()
    assert summary["dataset_size"] == len(train) and summary["alarms"] == []
    assert len(summary["epochs"]) > 1  # DP-SGD stops at its ε: as many epochs as the budget allowed
    for epoch in summary["epochs"]:
        assert abs(epoch["coverage"] - epoch["expected_coverage"]) < 0.1


def test_a_replaying_sampler_in_the_twin_raises_alarms(monkeypatch: pytest.MonkeyPatch) -> None:
    _replaying(monkeypatch)
    train = sklearn_dataset("digits", "train", seed=0).subset(800)
    monitor = DataAccessMonitor(None, DEMO_BATCH, sampling="poisson")
    train_private(train.x, train.y, 0, data_observer=monitor)
    assert {"coverage", "frequency"} <= {a.check for a in monitor.alarms}


@pytest.mark.slow
def test_assess_privacy_with_a_replaying_sampler_writes_the_summary_and_exits_1(
    run_main: RunMain, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _replaying(monkeypatch)
    out = tmp_path / "report"
    code, _, stderr = run_main(
        "assess", "--demo", "--privacy", "--attacks", "fgsm", "--samples", "20", "--out", str(out)
    )  # fmt: skip
    assert code == 1 and "data-access alarms" in stderr
    assert json.loads((out / "report.json").read_text())["privacy"]  # the report is written first
    summary = json.loads((out / "data-access.json").read_text())
    assert summary["sampling"] == "poisson" and {"coverage", "frequency"} <= {a["check"] for a in summary["alarms"]}
