"""`modelshield harden` end to end: files written, before/after printed, resume, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
from typer.testing import CliRunner

from modelshield.cli.main import app
from modelshield.integrity.safe_load import load_model

if TYPE_CHECKING:
    from conftest import RunMain

FAST = ["--epochs", "1", "--steps", "2", "--eval-steps", "5", "--batch-size", "64", "--no-progress"]


def test_demo_hardening_writes_a_loadable_model(tmp_path: Path) -> None:
    out = tmp_path / "run"
    runner = CliRunner()
    first = runner.invoke(app, ["harden", "--demo", "--method", "pgd", "--out", str(out), *FAST])
    assert first.exit_code == 0, first.output
    assert "before" in first.output and "after (pgd)" in first.output and "ε=0.1" in first.output
    history = json.loads((out / "history.json").read_text())
    assert history["method"] == "pgd" and len(history["history"]) == 1
    assert history["evaluation"]["before"]["robust"] < history["evaluation"]["before"]["clean"]
    info = json.loads((out / "model.json").read_text())
    model = load_model(out / "model.safetensors", arch=info["arch"], input_shape=info["input_shape"])
    assert model.num_classes == 10


def test_custom_model_and_data_and_resume(tmp_path: Path) -> None:
    """--model/--arch/--data: safetensors weights and an .npz, a held-out test split, then --resume."""
    import torch

    from modelshield.core.datasets import sklearn_dataset
    from modelshield.core.loading import save_torch_model
    from modelshield.demo import DigitsCNN

    ds = sklearn_dataset("digits", "all").subset(300)
    np.savez(tmp_path / "data.npz", x=ds.x.numpy(), y=ds.y.numpy())
    torch.manual_seed(0)
    save_torch_model(DigitsCNN(), tmp_path / "w.safetensors")
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app,
        [
            "harden",
            "--model",
            str(tmp_path / "w.safetensors"),
            "--arch",
            "modelshield.demo:DigitsCNN",
            "--data",
            str(tmp_path / "data.npz"),
            "--method",
            "trades",
            "--eps",
            "0.1",
            "--out",
            str(out),
            *FAST,
        ],
    )
    assert result.exit_code == 0, result.output
    assert json.loads((out / "history.json").read_text())["evaluation"]["samples"] == 60

    again = CliRunner().invoke(app, ["harden", "--resume", str(out), "--epochs", "2", "--no-progress"])
    assert again.exit_code == 0, again.output
    history = json.loads((out / "history.json").read_text())
    assert history["method"] == "trades" and history["resumed_from_epoch"] == 1
    assert [h["epoch"] for h in history["history"]] == [1, 2]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--demo", "--method", "bogus"], "unknown training method 'bogus'"),
        (["--demo", "--eps", "-0.1"], "--eps takes one positive number"),
        (["--demo", "--method", "fast", "--beta", "3"], "method fast takes no beta"),
        (["--model", "m.safetensors"], "--model and --data are both required"),
        (["--demo", "--epochs", "0"], "epochs must be an integer"),
        (["--resume", "nowhere"], "holds no harden run to resume"),
        (["--resume", ".", "--method", "pgd"], "--resume reuses the run's settings; drop --method"),
    ],
)
def test_bad_input_is_one_line_on_stderr(
    args: list[str], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run_main: RunMain
) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = run_main("harden", *args, "--out", str(tmp_path / "o"), "--no-progress")
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], err
    assert not (tmp_path / "o").exists()  # refused before anything was written


def test_bad_input_through_the_installed_command(tmp_path: Path) -> None:
    """The same contract from a real process: exit 2, one line, no traceback."""
    (tmp_path / "data.npz").write_bytes(b"not an npz")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "modelshield",
            "harden",
            "--model",
            "w.safetensors",
            "--arch",
            "x:Y",
            "--data",
            str(tmp_path / "data.npz"),
            "--eps",
            "0.1",
            "--out",
            str(tmp_path / "o"),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
