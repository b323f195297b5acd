"""The data-access monitor inside `modelshield harden` and `modelshield train --dp`: an honest run is quiet and
leaves its summary, a tampered sampler raises alarms (in the output, OUT/data-access.json, the exit status and the
audit log); the Poisson checks hold their false-alarm rate and catch replays and hot samples."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from modelshield.audit import AuditLog
from modelshield.defenses.training import loop
from modelshield.monitor.alerts.signals import read_records, record_signal
from modelshield.monitor.training import DataAccessMonitor
from modelshield.privacy.dp import training as dp_training

RunMain = Callable[..., tuple[int, str, str]]  # the root conftest's run_main fixture

HARDEN = ["harden", "--arch", "modelshield.demo:DigitsCNN", "--method", "standard", "--gating-eps", "0.1",
          "--epochs", "2", "--batch-size", "64", "--eval-steps", "2", "--no-progress"]  # fmt: skip
DP = ["train", "--dp", "--data", "sklearn:breast_cancer:train", "--noise-multiplier", "1.0", "--epochs", "6",
      "--batch-size", "32"]  # fmt: skip


def test_honest_harden_run_is_quiet_and_writes_its_summary(
    run_main: RunMain, tmp_path: Path, digits_files: list[str]
) -> None:
    code, stdout, stderr = run_main(*HARDEN, *digits_files, "--out", str(tmp_path / "h"))
    assert code == 0, stderr
    assert "data access (shuffle): 2 epochs" in stdout and "data access: no alarms" in stdout
    summary = json.loads((tmp_path / "h" / "data-access.json").read_text())
    assert summary["alarms"] == [] and len(summary["epochs"]) == 2
    n_train = summary["dataset_size"]
    assert n_train == 432  # 600 less the 20 % test split, less the 10 % validation hold-out
    for epoch in summary["epochs"]:
        assert epoch["coverage"] == 1.0 and epoch["max_reads"] == 1 and epoch["samples_read"] == n_train
        assert epoch["batches"] == -(-n_train // 64) and epoch["batch_size"]["max"] == 64


def test_a_harden_loop_that_stops_shuffling_exits_1_with_alarms(
    run_main: RunMain, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, digits_files: list[str]
) -> None:
    monkeypatch.setattr(loop, "shuffled_positions", lambda n, generator: torch.arange(n))
    code, stdout, stderr = run_main(*HARDEN, *digits_files, "--out", str(tmp_path / "h"))
    assert code == 1
    checks = {a["check"] for a in json.loads((tmp_path / "h" / "data-access.json").read_text())["alarms"]}
    assert {"shuffle", "reshuffle"} <= checks
    assert "data-access alarms" in stderr and (tmp_path / "h" / "model.safetensors").exists()


def test_honest_dp_run_is_quiet(run_main: RunMain, tmp_path: Path) -> None:
    code, stdout, stderr = run_main(*DP, "--out", str(tmp_path / "d"))
    assert code == 0, stderr
    summary = json.loads((tmp_path / "d" / "data-access.json").read_text())
    assert summary["sampling"] == "poisson" and summary["alarms"] == [] and len(summary["epochs"]) == 6
    sizes = {e["batch_size"]["min"] for e in summary["epochs"]} | {e["batch_size"]["max"] for e in summary["epochs"]}
    assert len(sizes) > 2  # Poisson batches vary in size, and that is no alarm
    for epoch in summary["epochs"]:
        assert abs(epoch["coverage"] - epoch["expected_coverage"]) < 0.1 and epoch["expected_coverage"] < 0.75


def test_a_replaying_dp_sampler_raises_alarms_in_the_audit_log(
    run_main: RunMain, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sampler that draws its Poisson batches from one fixed third of the data (a subset replayed)."""
    honest = dp_training.poisson_batch

    def tampered(n: int, q: float, generator: torch.Generator) -> torch.Tensor:
        return honest(n // 3, min(1.0, 3 * q), generator)

    monkeypatch.setattr(dp_training, "poisson_batch", tampered)
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    code, _, stderr = run_main(*DP, "--out", str(tmp_path / "d"), "--audit-db", url)
    assert code == 1 and (tmp_path / "d" / "model.safetensors").exists()
    alarms = json.loads((tmp_path / "d" / "data-access.json").read_text())["alarms"]
    assert {"coverage", "frequency"} <= {a["check"] for a in alarms}
    with AuditLog.open(url) as audit:
        signals = [record_signal(event, at) for _, at, event in read_records(audit.engine)]
    assert len(signals) == len(alarms)
    assert {s.name for s in signals if s is not None} == {"training.alarm"}


def _poisson_epochs(monitor: DataAccessMonitor, rng: np.random.Generator, epochs: int, sample: object) -> None:
    n, q = monitor.n, monitor.sample_rate
    for _ in range(epochs):
        for _ in range(round(n / monitor.batch_size)):
            monitor.record_batch(sample(n, q) if callable(sample) else np.nonzero(rng.random(n) < q)[0])
        monitor.end_epoch()


@pytest.mark.parametrize(("n", "batch"), [(1437, 128), (300, 8), (2000, 400)])
def test_honest_poisson_sampling_raises_no_alarm_in_many_epochs(n: int, batch: int) -> None:
    rng = np.random.default_rng(n)
    monitor = DataAccessMonitor(n, batch, labels=rng.integers(0, 10, n), sampling="poisson")
    _poisson_epochs(monitor, rng, 100, None)
    assert monitor.alarms == []


def test_poisson_tampering_is_caught() -> None:
    rng = np.random.default_rng(0)
    n, batch = 1437, 64
    hot = DataAccessMonitor(n, batch, sampling="poisson")  # one sample slipped into every batch
    _poisson_epochs(hot, rng, 1, lambda n, q: np.union1d(np.nonzero(rng.random(n) < q)[0], [7]))
    assert [a.check for a in hot.alarms] == ["frequency"] and "read 22 times" in hot.alarms[0].message
    fixed = np.nonzero(rng.random(n) < batch / n)[0]
    replay = DataAccessMonitor(n, batch, sampling="poisson")  # one honest-looking batch, every step
    _poisson_epochs(replay, rng, 1, lambda n, q: fixed)
    assert {"coverage", "frequency", "replay"} <= {a.check for a in replay.alarms}
    shuffled = DataAccessMonitor(n, batch, sampling="poisson")  # a shuffled pass in fixed batches: not what ε assumes
    for chunk in np.array_split(rng.permutation(n), round(n / batch)):
        shuffled.record_batch(chunk)
    assert "coverage" in {a.check for a in shuffled.end_epoch()}
    big = DataAccessMonitor(n, batch, sampling="poisson")  # one batch four times the expected size
    big.record_batch(np.arange(4 * batch))
    assert "batch-size" in {a.check for a in big.end_epoch()}


def test_a_monitor_sized_by_the_loop_refuses_a_mismatch() -> None:
    from modelshield.core.errors import InputError

    monitor = DataAccessMonitor(100, 10)
    with pytest.raises(InputError, match="trains on 50 samples"):
        monitor.start(torch.zeros(50, dtype=torch.long))
    with pytest.raises(InputError, match="more than 10 samples"):
        DataAccessMonitor(None, 10, sampling="poisson").start(np.zeros(10))
