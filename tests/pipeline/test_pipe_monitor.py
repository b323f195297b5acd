"""The train stage watches what its training loop reads (``monitor.training``): an honest DP-SGD or robust run
passes with the data-access summary in its details, a tampered sampler fails the stage and the model is not handed
on, and ``monitor: false`` turns the watch off."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from modelshield.defenses.training import loop
from modelshield.pipeline import load_pipeline, run_pipeline
from modelshield.pipeline.runner import RunOutcome
from modelshield.privacy.dp import training as dp_training

TRAIN = """name: watched
artifacts: {{data: data/reference.csv, base: base-model}}
stages:
  - name: train
    kind: train
    inputs: {{data: data, base: base}}
    outputs: {{model: model}}
    policy: {{{policy}, label: label, input_shape: [1, 8, 8]}}
"""
DP = "method: dp, epsilon: 8, epochs: 2, batch_size: 64"
ROBUST = "method: standard, epochs: 2, batch_size: 64"


def _run(demo: Path, run: Path, policy: str) -> RunOutcome:
    (demo / "watched.yaml").write_text(TRAIN.format(policy=policy))
    config, base = load_pipeline(demo / "watched.yaml")
    return run_pipeline(config, base, run_dir=run)


def _replaying(monkeypatch: pytest.MonkeyPatch) -> None:
    """A sampler that draws its Poisson batches from one fixed third of the data (a subset replayed)."""
    honest = dp_training.poisson_batch

    def tampered(n: int, q: float, generator: torch.Generator) -> torch.Tensor:
        return honest(n // 3, min(1.0, 3 * q), generator)

    monkeypatch.setattr(dp_training, "poisson_batch", tampered)


def test_an_honest_dp_stage_passes_with_its_data_access_summary(demo: Path, tmp_path: Path) -> None:
    outcome = _run(demo, tmp_path / "run", DP)
    (train,) = outcome.stages
    assert outcome.status == "passed", outcome.reason
    access = train["details"]["data_access"]
    assert access["sampling"] == "poisson" and access["epochs"] == 2 and access["alarms"] == []
    for seen, expected in zip(access["coverage"], access["expected_coverage"], strict=True):
        assert abs(seen - expected) < 0.1
    summary = json.loads(Path(access["summary"]).read_text())
    assert summary["epochs_covered"] == [0, 1] and summary["alarms"] == []
    assert all(f.startswith(str(tmp_path / "run")) for f in access["files_outside_python"])  # the model it wrote
    assert (tmp_path / "run" / "artifacts" / "model" / "model.safetensors").is_file()


def test_a_replaying_dp_sampler_fails_the_stage_and_keeps_the_model_back(
    demo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _replaying(monkeypatch)
    outcome = _run(demo, tmp_path / "run", DP)
    (train,) = outcome.stages
    assert outcome.status == "failed" and outcome.stopped_at == "train"
    assert "data access raised" in outcome.reason and "coverage" in outcome.reason
    checks = {a["check"] for a in train["details"]["data_access"]["alarms"]}
    assert {"coverage", "frequency"} <= checks
    (finding,) = train["findings"]
    assert finding["id"] == "MS-TRAIN-DATA-ACCESS" and finding["severity"] == "high"
    assert not (tmp_path / "run" / "artifacts" / "model").exists()  # not handed on to sign, register, deploy


def test_an_unshuffled_robust_stage_fails_and_monitor_false_turns_the_watch_off(
    demo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(loop, "shuffled_positions", lambda n, generator: torch.arange(n))
    outcome = _run(demo, tmp_path / "on", ROBUST)
    assert outcome.stopped_at == "train" and "shuffle" in outcome.reason
    outcome = _run(demo, tmp_path / "off", ROBUST + ", monitor: false")
    (train,) = outcome.stages
    assert outcome.status == "passed" and "data_access" not in train["details"]


def test_monitor_z_is_checked_with_the_policy(demo: Path, tmp_path: Path) -> None:
    from modelshield.core.errors import InputError

    with pytest.raises(InputError, match=r"stages\[0\].*monitor_z"):
        _run(demo, tmp_path / "run", DP + ", monitor_z: 0")
