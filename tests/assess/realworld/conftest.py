"""The real-world matrix: models and data written and saved the way users do, assessed through the CLI."""

from __future__ import annotations

import json
from collections.abc import Callable
from importlib.resources import files
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pytest
import torch
from entrypoint import invoke_main
from realworld_models import MobileNetV2, ResNet18, colour_digits, train
from realworld_settings import BATCH, HSJ_SAMPLES, N

SCHEMA = json.loads(files("modelshield.report").joinpath("schemas/report.schema.json").read_text())

Assess = Callable[..., dict[str, Any]]


@pytest.fixture(scope="session")
def colour_test() -> tuple[np.ndarray, np.ndarray]:
    """64 test images (3×32×32, [0, 1]) and their labels."""
    x, y = colour_digits("test", seed=1)
    return x[:N], y[:N]


@pytest.fixture(scope="session")
def colour_npz(tmp_path_factory: pytest.TempPathFactory, colour_test: tuple[np.ndarray, np.ndarray]) -> Path:
    path = tmp_path_factory.mktemp("data") / "test.npz"
    np.savez(path, x=colour_test[0], y=colour_test[1])
    return path


@pytest.fixture(scope="session")
def trained() -> dict[str, torch.nn.Module]:
    """The ResNet-18 and MobileNetV2 trained for a few epochs on the colour digits' training split."""
    x, y = colour_digits("train")
    torch.manual_seed(0)
    nets = {"resnet18": train(ResNet18(), x, y, epochs=2), "mobilenet": train(MobileNetV2(), x, y, epochs=2)}
    for net in nets.values():
        assert not net.training
    return nets


@pytest.fixture
def assess_cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> Assess:
    """``assess_cli(*args, n=64)``: run ``modelshield assess ARGS --out <tmp> --batch-size 16`` in process and
    check what every run owes its user: exit 0 or 1 (never bad input or an internal bug), a schema-valid
    report.json, and every attack record counting the samples it was meant to (all N; HopSkipJump its
    subset). Returns the report, with the CLI's stderr under ``"_stderr"``."""

    def run(*args: str, n: int = N, batch: int = BATCH) -> dict[str, Any]:
        out = tmp_path / f"out{len(list(tmp_path.iterdir()))}"
        code, _, err = invoke_main(
            ["assess", *args, "--out", str(out), "--batch-size", str(batch)], monkeypatch, capsys
        )
        assert code in (0, 1), f"exit {code}: {err[-2000:]}"
        assert "Traceback" not in err
        report = json.loads((out / "report.json").read_text())
        jsonschema.validate(report, SCHEMA)
        assert report["data"]["samples"] == n
        assert report["attacks"], "no attack ran"
        for rec in report["attacks"]:
            expected = min(HSJ_SAMPLES, n) if rec["attack"] == "hopskipjump" else n
            assert rec["samples"] == expected, (rec["attack"], rec["samples"], expected)
            assert 0.0 <= rec["robust_accuracy"] <= report["clean_accuracy"] + 1e-9, rec
        for name in ("report.html", "report.md", "report.sarif"):
            assert (out / name).stat().st_size > 0, name
        report["_stderr"] = err
        return report

    return run
