"""`modelshield assess` as a user runs it: reports written, gate exit code, bad input → one line, exit 2."""

from __future__ import annotations

import json
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest
from entrypoint import invoke_main

from modelshield.cli.main import main

QUICK = ["--samples", "80", "--steps", "5", "--queries", "60", "--attacks", "fgsm,pgd,deepfool,square"]


def run_cli(args: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """Call the real entry point in-process; return its exit code and stderr."""
    code, _, err = invoke_main(args, monkeypatch, capsys)
    return code, err


@pytest.fixture(scope="module")
def demo_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    mp = pytest.MonkeyPatch()
    mp.setattr(sys, "argv", ["modelshield", "assess", "--demo", "--out", str(out), *QUICK])
    try:
        main()
    except SystemExit as exc:
        assert not exc.code, exc.code
    finally:
        mp.undo()
    return out


def test_demo_writes_every_report(demo_out: Path) -> None:
    for name in ("report.html", "report.json", "report.sarif", "report.md", "model.safetensors"):
        assert (demo_out / name).stat().st_size > 0, name
    report = json.loads((demo_out / "report.json").read_text())
    assert 0.9 < report["clean_accuracy"] <= 1.0
    assert {a["attack"] for a in report["attacks"]} == {"fgsm", "pgd", "deepfool", "square"}
    for a in report["attacks"]:
        assert {"attack", "norm", "eps", "robust_accuracy", "success_rate", "queries", "seconds"} <= set(a)
    assert report["findings"] and report["command"].startswith("modelshield assess --demo")
    sarif = json.loads((demo_out / "report.sarif").read_text())
    assert sarif["version"] == "2.1.0" and len(sarif["runs"][0]["results"]) == len(report["findings"])


def test_saved_demo_model_reloads_and_gate_exits_1(
    demo_out: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["assess", "--model", str(demo_out / "model.safetensors"), "--arch", "modelshield.demo:DigitsCNN",
            "--data", "sklearn:digits", "--out", str(tmp_path), "--eps", "0.1", "--attacks", "pgd", "--steps", "5",
            "--samples", "60", "--fail-under", "0.95"]
    code, err = run_cli(args, monkeypatch, capsys)
    assert code == 1, err
    assert "FAILED" in err
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["passed"] is False and report["gating"]["fail_under"] == 0.95


def _npz(path: Path, x: np.ndarray, y: np.ndarray) -> str:
    np.savez(path, x=x, y=y)
    return str(path)


def test_bad_input_is_one_line_exit_2(
    demo_out: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    weights = str(demo_out / "model.safetensors")
    model = ["--model", weights, "--arch", "modelshield.demo:DigitsCNN", "--out", str(tmp_path / "o")]
    x = np.random.default_rng(0).random((20, 1, 8, 8), dtype=np.float32)
    y = np.arange(20) % 10
    bad_x = x.copy()
    bad_x[3, 0, 2, 2] = np.nan
    pickled = tmp_path / "model.pkl"
    pickled.write_bytes(pickle.dumps({"weights": [1, 2, 3]}))
    cases = {
        "negative eps": ["assess", "--demo", "--eps", "-0.1", "--out", str(tmp_path / "o")],
        "missing file": ["assess", "--model", str(tmp_path / "nope.onnx"), "--data", "sklearn:digits"],
        "pickle": ["assess", "--model", str(pickled), "--data", "sklearn:digits"],
        "nan": ["assess", *model, "--data", _npz(tmp_path / "nan.npz", bad_x, y)],
        "labels": ["assess", *model, "--data", _npz(tmp_path / "lab.npz", x, y + 10), "--num-classes", "10"],
        "shape": ["assess", *model, "--data", _npz(tmp_path / "flat.npz", x.reshape(20, 64), y)],
        "unknown format": ["assess", "--model", str(tmp_path / "x.bin"), "--data", "sklearn:digits"],
        "unknown attack": ["assess", "--demo", "--attacks", "pgd,zzz"],
    }
    (tmp_path / "x.bin").write_bytes(b"\x00\x01garbage" * 10)
    for name, args in cases.items():
        code, err = run_cli(args, monkeypatch, capsys)
        lines = [ln for ln in err.strip().splitlines() if ln.strip()]
        assert code == 2, (name, code, err)
        assert len(lines) == 1 and lines[0].startswith("error: "), (name, err)
        assert "Traceback" not in err
    _, err = run_cli(cases["pickle"], monkeypatch, capsys)
    assert "pickle" in err.lower()


def test_settings_file_sets_the_policy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "modelshield.toml"
    cfg.write_text('[assess]\neps = [0.2]\nattacks = ["fgsm"]\nfail_under = 0.99\nsamples = 40\n')
    code, err = run_cli(["assess", "--demo", "--config", str(cfg), "--out", str(tmp_path / "o")], monkeypatch, capsys)
    assert code == 1, err
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    assert [(a["attack"], a["eps"]) for a in report["attacks"]] == [("fgsm", 0.2)]
    assert report["data"]["samples"] == 40 and report["gating"]["fail_under"] == 0.99
    cfg.write_text("[assess]\nfail_under = 3\n")
    code, err = run_cli(["assess", "--demo", "--config", str(cfg)], monkeypatch, capsys)
    assert code == 2 and "fail_under" in err and len(err.strip().splitlines()) == 1


def test_recorded_command_never_holds_secrets() -> None:
    from modelshield.cli.assess import redact_argv

    argv = ["assess", "--model", "https://user:pw@host:8443/v1/predict?token=abc", "--header", "Authorization: Bearer s3cr3t",
            "--header=X-API-Key: k3y", "--data", "sklearn:digits"]
    shown = " ".join(redact_argv(argv))
    for secret in ("pw", "abc", "s3cr3t", "k3y"):
        assert secret not in shown.replace("predict", "")
    assert "https://host:8443/v1/predict" in shown and "Authorization: ***" in shown


def test_unwritable_output_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    code, err = run_cli(["assess", "--demo", "--out", str(blocker / "out")], monkeypatch, capsys)
    assert code == 2 and err.startswith("error: ") and len(err.strip().splitlines()) == 1, err


def test_module_entry_point_reports_errors_without_traceback(tmp_path: Path) -> None:
    """`python -m modelshield` goes through the same error handling as the console script."""
    import subprocess

    done = subprocess.run([sys.executable, "-m", "modelshield", "crypto", "decrypt", str(tmp_path / "missing.msenc")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("error: ") and "Traceback" not in done.stderr
