"""`modelshield train --dp`: trains, prints the spent ε, saves it with the model and in the registry; bad input is one line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from modelshield.privacy.dp import read_dp_metadata

if TYPE_CHECKING:  # `from conftest import` at run time resolves to whichever conftest loaded last
    from conftest import RunMain


def test_breast_cancer_mlp_trains_saves_and_registers_its_budget(run_main: RunMain, tmp_path: Path) -> None:
    out, db = tmp_path / "dp", f"sqlite:///{tmp_path / 'reg.db'}"
    code, stdout, stderr = run_main(
        "train", "--dp",
        "--data", "sklearn:breast_cancer:train", "--test-data", "sklearn:breast_cancer:test",
        "--epsilon", "3", "--epochs", "8", "--batch-size", "64",
        "--out", str(out), "--register", "bc-dp", "--owner", "privacy-team", "--db", db,
    )  # fmt: skip
    assert code == 0, stderr
    meta = read_dp_metadata(out / "model.safetensors")
    assert meta is not None and meta["epsilon"] <= 3.0 and meta["target_epsilon"] == 3.0
    assert f"{meta['epsilon']:.3f}" in stdout and "test accuracy" in stdout
    sidecar = json.loads((out / "model.json").read_text())
    assert sidecar["arch"] == "modelshield.privacy.dp.models:TabularMLP" and sidecar["test_accuracy"] > 0.8
    assert "epoch   8/8" in stderr and "registered bc-dp:1" in stderr
    code, stdout, _ = run_main("registry", "show", "bc-dp", "1", "--db", db)
    assert code == 0 and json.loads(stdout)["metadata"]["privacy"]["epsilon"] == meta["epsilon"]


def test_a_batchnorm_network_is_refused_in_one_line(run_main: RunMain, tmp_path: Path) -> None:
    code, _, stderr = run_main(
        "train", "--dp", "--data", "sklearn:breast_cancer:train", "--epsilon", "1",
        "--arch", "torch.nn:BatchNorm1d", "--arch-kwargs", '{"num_features": 30}', "--out", str(tmp_path / "x"),
    )  # fmt: skip
    assert code == 2 and "BatchNorm1d" in stderr and "GroupNorm" in stderr
    assert len(stderr.strip().splitlines()) == 1 and not (tmp_path / "x").exists()


def test_without_dp_or_budget_it_says_what_to_add(run_main: RunMain, tmp_path: Path) -> None:
    code, _, stderr = run_main("train", "--demo")
    assert code == 2 and "--dp" in stderr
    code, _, stderr = run_main("train", "--dp", "--demo", "--out", str(tmp_path / "y"))
    assert code == 2 and "target ε" in stderr and len(stderr.strip().splitlines()) == 1
