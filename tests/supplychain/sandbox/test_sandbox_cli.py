"""`modelshield sandbox check` and `predict` end to end: output files, exit codes, one-line errors."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from typer.testing import CliRunner

from modelshield.cli.main import app, main

runner = CliRunner()


def test_check_reports_every_layer_and_every_escape_attempt_failing() -> None:
    result = runner.invoke(app, ["sandbox", "check", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["isolated"] is True
    assert {layer["name"] for layer in report["layers"] if layer["active"]} >= {
        "network namespace",
        "read-only view",
        "privileges",
        "landlock",
        "seccomp",
        "resource limits",
    }
    attempts = {p["attempt"].split(":")[0].split(" in ")[0]: p for p in report["probes"]}
    assert {"tcp", "udp", "unix", "write"} <= set(attempts)
    assert all(p["ok"] for p in report["probes"])
    assert [p["succeeded"] for p in report["probes"] if p["expected"]] == [True]  # scratch only


def test_predict_writes_the_same_predictions_as_in_process(
    vendor: Path, vendor_module: ModuleType, tmp_path: Path
) -> None:
    x = np.random.default_rng(0).random((20, 8), dtype=np.float32)
    np.save(tmp_path / "x.npy", x)
    out = tmp_path / "preds.npy"
    args = [
        "sandbox",
        "predict",
        "--vendor",
        str(vendor),
        "--entry",
        "acme.models:linear",
        "--kwargs",
        '{"seed": 4}',
        "--data",
        str(tmp_path / "x.npy"),
        "--out",
        str(out),
        "--memory",
        "2G",
        "--timeout",
        "30",
        "--output",
        "labels",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "isolation layers on" in result.output
    np.testing.assert_array_equal(np.load(out, allow_pickle=False), vendor_module.Linear(4)(x).argmax(1))


def test_predict_errors_are_one_line_with_exit_2(
    vendor: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    np.save(tmp_path / "x.npy", np.zeros((2, 8), dtype=np.float32))
    base = [
        "modelshield",
        "sandbox",
        "predict",
        "--vendor",
        str(vendor),
        "--data",
        str(tmp_path / "x.npy"),
        "--out",
        str(tmp_path / "p.npy"),
    ]
    for extra, message in [
        (["--entry", "acme.models:slow_load", "--startup-timeout", "1"], "did not start within 1 s"),
        (["--entry", "acme.models:linear", "--memory", "lots"], "is not a size"),
        (["--entry", "acme.models:nothing_here"], "AttributeError"),
        (["--entry", "acme.models:linear", "--data", str(vendor / "acme" / "models.py")], "is not a .npy array"),
    ]:
        monkeypatch.setattr(sys, "argv", base + extra)
        with pytest.raises(SystemExit) as exit_info:
            main()
        err = capsys.readouterr().err
        assert exit_info.value.code == 2, err
        assert err.startswith("error: ") and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "p.npy").exists()


def test_check_detects_an_escape_when_a_layer_is_missing() -> None:
    """Without seccomp a Unix socket in a visible folder is reachable: the check must say so, not pass."""
    from modelshield.supplychain.sandbox.client import check_isolation

    _, probes = check_isolation(disable=("seccomp",))
    escaped = [p.attempt.split(":")[0] for p in probes if not p.ok]
    assert escaped == ["unix"]
