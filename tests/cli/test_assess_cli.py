"""`modelshield assess` as a user runs it: reports written, gate exit code, bad input → one line, exit 2."""

from __future__ import annotations

import json
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from entrypoint import invoke_main
from safetensors.torch import load_model

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
    args = [
        "assess",
        "--model",
        str(demo_out / "model.safetensors"),
        "--arch",
        "modelshield.demo:DigitsCNN",
        "--data",
        "sklearn:digits",
        "--out",
        str(tmp_path),
        "--eps",
        "0.1",
        "--attacks",
        "pgd",
        "--steps",
        "5",
        "--samples",
        "60",
        "--fail-under",
        "0.95",
    ]
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

    argv = [
        "assess",
        "--model",
        "https://user:pw@host:8443/v1/predict?token=abc",
        "--header",
        "Authorization: Bearer s3cr3t",
        "--header=X-API-Key: k3y",
        "--data",
        "sklearn:digits",
    ]
    shown = " ".join(redact_argv(argv))
    for secret in ("pw", "abc", "s3cr3t", "k3y"):
        assert secret not in shown.replace("predict", "")
    assert "https://host:8443/v1/predict" in shown and "Authorization: ***" in shown


def test_unwritable_output_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    code, err = run_cli(["assess", "--demo", "--out", str(blocker / "out")], monkeypatch, capsys)
    assert code == 2 and err.startswith("error: ") and len(err.strip().splitlines()) == 1, err


def test_module_entry_point_reports_errors_without_traceback(tmp_path: Path) -> None:
    """`python -m modelshield` goes through the same error handling as the console script."""
    import subprocess

    done = subprocess.run(
        [sys.executable, "-m", "modelshield", "crypto", "decrypt", str(tmp_path / "missing.msenc")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("error: ") and "Traceback" not in done.stderr


def test_no_fail_under_is_no_gate_not_passed(demo_out: Path) -> None:
    report = json.loads((demo_out / "report.json").read_text())
    assert report["verdict"] == "NO GATE" and report["passed"] is True
    md = (demo_out / "report.md").read_text().splitlines()
    assert "NO GATE" in md[0] and "PASSED" not in md[0]
    worst = max(report["findings"], key=lambda f: ["info", "low", "medium", "high", "critical"].index(f["severity"]))
    assert md[2].startswith(f"**Worst finding:** {worst['severity'].upper()} {worst['id']}")
    html = (demo_out / "report.html").read_text()
    assert '<div class="stamp">NO GATE</div>' in html and "PASSED" not in html


class _Saturated(torch.nn.Module):
    """Logits ×100 (defensive distillation's temperature): cross-entropy gradients underflow, gradients look masked."""

    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 100 * self.net(x)


class _OneHot(_Saturated):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.one_hot(self.net(x).argmax(dim=1), 10).float()


def _torchscript(demo_out: Path, wrapper: type[torch.nn.Module], path: Path) -> str:
    from modelshield.demo import DigitsCNN

    net = DigitsCNN()
    load_model(net, str(demo_out / "model.safetensors"))
    torch.jit.save(torch.jit.trace(wrapper(net.eval()), torch.zeros(2, 1, 8, 8)), str(path))
    return str(path)


def test_masked_model_is_untrusted_exit_1_unless_allowed(
    demo_out: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    model = _torchscript(demo_out, _Saturated, tmp_path / "saturated.pt")
    args = [
        "assess",
        "--model",
        model,
        "--data",
        "sklearn:digits",
        "--samples",
        "80",
        "--eps",
        "0.1",
        "--attacks",
        "pgd,square",
        "--steps",
        "5",
        "--queries",
        "200",
        "--out",
        str(tmp_path / "o"),
    ]
    code, err = run_cli(args, monkeypatch, capsys)
    assert code == 1, err
    summary = err[err.index("UNTRUSTED") :]
    assert summary.startswith("UNTRUSTED Untrusted: sanity checks show gradient masking")
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    assert report["verdict"] == "UNTRUSTED" and report["passed"] is False
    assert (tmp_path / "o" / "report.md").read_text().startswith("## ⚠️ modelshield: UNTRUSTED")
    sarif = json.loads((tmp_path / "o" / "report.sarif").read_text())
    assert sarif["runs"][0]["properties"]["verdict"] == "UNTRUSTED"
    code, err = run_cli([*args, "--allow-untrusted"], monkeypatch, capsys)
    assert code == 0, err
    assert "--allow-untrusted was given" in err


def test_model_without_gradients_still_gets_black_box_numbers(
    demo_out: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    model = _torchscript(demo_out, _OneHot, tmp_path / "onehot.pt")
    args = [
        "assess",
        "--model",
        model,
        "--data",
        "sklearn:digits",
        "--samples",
        "60",
        "--eps",
        "0.1",
        "--attacks",
        "fgsm,pgd,square",
        "--steps",
        "5",
        "--queries",
        "100",
        "--out",
        str(tmp_path / "o"),
    ]
    code, err = run_cli(args, monkeypatch, capsys)
    assert code == 1, err
    assert "Traceback" not in err and "not applicable" in err
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    assert [a["attack"] for a in report["attacks"]] == ["square"]
    assert {(e["attack"], e["kind"]) for e in report["errors"]} == {
        ("fgsm", "not-applicable"),
        ("pgd", "not-applicable"),
    }
    assert any(f["id"] == "MS-SANITY-002" and f["severity"] == "high" for f in report["findings"])


def test_exit_codes_do_not_change_in_debug_mode(
    demo_out: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import modelshield.report

    weights = str(demo_out / "model.safetensors")
    gate = [
        "assess",
        "--model",
        weights,
        "--arch",
        "modelshield.demo:DigitsCNN",
        "--data",
        "sklearn:digits",
        "--samples",
        "40",
        "--eps",
        "0.1",
        "--attacks",
        "fgsm",
        "--out",
        str(tmp_path / "o"),
    ]
    for debug in (False, True):
        if debug:
            monkeypatch.setenv("MODELSHIELD_DEBUG", "1")
        assert run_cli([*gate, "--fail-under", "0.0"], monkeypatch, capsys)[0] == 0
        assert run_cli([*gate, "--fail-under", "0.99"], monkeypatch, capsys)[0] == 1
        assert run_cli([*gate, "--eps", "-1"], monkeypatch, capsys)[0] == 2
        with monkeypatch.context() as m:
            m.setattr(modelshield.report, "write_reports", _broken_writer)
            code, err = run_cli(gate, monkeypatch, capsys)
        assert code == 3, err
        assert err.strip().splitlines()[-1].startswith("internal error: RuntimeError: a bug")
        assert ("Traceback" in err) == debug


def _broken_writer(*_args: object, **_kwargs: object) -> None:
    raise RuntimeError("a bug in a report writer")


def test_pgd_settings_from_the_command_line(
    demo_out: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    args = [
        "assess",
        "--demo",
        "--samples",
        "40",
        "--eps",
        "0.1",
        "--attacks",
        "pgd",
        "--steps",
        "4",
        "--pgd-step",
        "eps/4",
        "--no-random-start",
        "--restarts",
        "2",
        "--out",
        str(tmp_path / "o"),
    ]
    code, err = run_cli(args, monkeypatch, capsys)
    assert code == 0, err
    (pgd,) = json.loads((tmp_path / "o" / "report.json").read_text())["attacks"]
    assert pgd["params"]["alpha"] == pytest.approx(0.025)
    assert pgd["params"]["random_start"] is False and pgd["params"]["restarts"] == 2
    code, err = run_cli([*args[:-2], "--pgd-step", "2/255", "--out", str(tmp_path / "p")], monkeypatch, capsys)
    assert code == 0, err
    assert json.loads((tmp_path / "p" / "report.json").read_text())["attacks"][0]["params"]["alpha"] == 2 / 255


@pytest.mark.parametrize(
    "extra, expected",
    [
        (["--alpha", "0.01"], "--alpha was renamed --cert-alpha"),
        (["--pgd-step", "eps/zero"], "--pgd-step: 'eps/zero' is not a step"),
        (["--restarts", "0"], "--restarts must be at least 1"),
        (["--certify", "--cert-alpha", "2"], "--cert-alpha must be in (0, 1)"),
    ],
)
def test_refusals_name_the_flag(
    extra: list[str], expected: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = run_cli(["assess", "--demo", "--out", str(tmp_path), *extra], monkeypatch, capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and expected in err, err


def test_messages_name_flags_not_python_arguments(
    demo_out: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = run_cli(
        ["assess", "--model", str(demo_out / "model.safetensors"), "--data", "sklearn:digits", "--out", str(tmp_path)],
        monkeypatch,
        capsys,
    )
    assert code == 2 and "--arch package.module:ClassName" in err and "arch=" not in err, err
    table = tmp_path / "t.csv"
    table.write_text("a,b,klass\n0.1,0.2,0\n0.3,0.4,1\n")
    code, err = run_cli(
        ["assess", "--model", str(demo_out / "model.safetensors"), "--data", str(table), "--out", str(tmp_path)],
        monkeypatch,
        capsys,
    )
    assert code == 2 and "--label-column" in err and "label_column" not in err, err


def test_skops_types_are_trusted_by_flag(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    skops_io = pytest.importorskip("skops.io")
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    x, y = load_digits(return_X_y=True)
    x = x / 16
    pipe = make_pipeline(FunctionTransformer(np.round), LogisticRegression(max_iter=300)).fit(x[:400], y[:400])
    skops_io.dump(pipe, tmp_path / "clf.skops")
    data = _npz(tmp_path / "d.npz", x[400:460].astype(np.float32), y[400:460])
    args = [
        "assess",
        "--model",
        str(tmp_path / "clf.skops"),
        "--data",
        data,
        "--attacks",
        "square",
        "--eps",
        "0.3",
        "--queries",
        "20",
        "--out",
        str(tmp_path / "o"),
    ]
    code, err = run_cli(args, monkeypatch, capsys)
    assert code == 2 and "numpy.round" in err and "--trust-type MODULE.CLASS" in err and "trusted_types" not in err
    code, err = run_cli([*args, "--trust-type", "numpy.round"], monkeypatch, capsys)
    assert code == 0, err
    assert json.loads((tmp_path / "o" / "report.json").read_text())["attacks"][0]["attack"] == "square"


def test_input_shape_reshapes_flat_rows(
    demo_out: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from modelshield.core.datasets import sklearn_dataset

    test = sklearn_dataset("digits", "test")
    flat = _npz(tmp_path / "flat.npz", test.x[:50].reshape(50, 64).numpy(), test.y[:50].numpy())
    args = [
        "assess",
        "--model",
        str(demo_out / "model.safetensors"),
        "--arch",
        "modelshield.demo:DigitsCNN",
        "--data",
        flat,
        "--attacks",
        "fgsm",
        "--eps",
        "0.1",
        "--out",
        str(tmp_path / "o"),
    ]
    code, err = run_cli(args, monkeypatch, capsys)
    assert code == 2, err
    code, err = run_cli([*args, "--input-shape", "1,8,8"], monkeypatch, capsys)
    assert code == 0, err
    assert json.loads((tmp_path / "o" / "report.json").read_text())["model"]["input_shape"] == [1, 8, 8]


def test_help_groups_options_by_concern(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    code, out, _ = invoke_main(["assess", "--help"], monkeypatch, capsys)
    assert code == 0
    panels = [
        "Model and data",
        "Attacks",
        "Gate and verdict",
        "Certification (--certify)",
        "Detectors (--detectors)",
        "Run and output",
    ]
    positions = [out.index(p) for p in panels]
    assert positions == sorted(positions)
    assert out.index("--pgd-step") > out.index("Attacks") and out.index("--cert-alpha") > out.index("Certification")
    assert "--alpha " not in out


def test_progress_is_one_line_per_stage_in_logs(
    demo_out: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    args = [
        "assess",
        "--demo",
        "--samples",
        "40",
        "--eps",
        "0.05,0.1",
        "--attacks",
        "fgsm,pgd",
        "--steps",
        "3",
        "--out",
        str(tmp_path),
    ]
    code, err = run_cli(args, monkeypatch, capsys)
    assert code == 0, err
    stages = [ln for ln in err.splitlines() if ln.startswith("assess [")]
    assert len(stages) == 4 and stages[0].startswith("assess [2/5] 0:") and stages[0].endswith("fgsm L∞ ε=0.05")
    assert err.splitlines()[0] == "training the demo CNN on scikit-learn's digits..."


def test_image_folder_of_mixed_sizes_with_image_size(
    demo_out: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from PIL import Image

    from modelshield.core.datasets import sklearn_dataset

    test = sklearn_dataset("digits", "test")
    picked = [
        i for c in range(10) for i in np.flatnonzero(test.y.numpy() == c)[:3]
    ]  # every class: folder order = label
    for n, i in enumerate(picked):
        folder = tmp_path / "digits" / str(int(test.y[i]))
        folder.mkdir(parents=True, exist_ok=True)
        side = (8, 16, 24)[n % 3]  # collected from three sources at three resolutions
        pixels = (test.x[i, 0].numpy() * 255).astype(np.uint8)
        Image.fromarray(pixels, mode="L").resize((side, side)).save(folder / f"{i}.png")
    args = [
        "assess",
        "--model",
        str(demo_out / "model.safetensors"),
        "--arch",
        "modelshield.demo:DigitsCNN",
        "--data",
        str(tmp_path / "digits"),
        "--attacks",
        "fgsm",
        "--eps",
        "0.1",
        "--out",
        str(tmp_path / "o"),
    ]
    code, err = run_cli(args, monkeypatch, capsys)
    assert code == 2 and "--image-size" in err, err
    code, err = run_cli([*args, "--image-size", "8,8"], monkeypatch, capsys)
    assert code == 0, err
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    assert report["data"]["samples"] == 30 and report["clean_accuracy"] > 0.8


@pytest.mark.parametrize(
    "message, hint, expected",
    [
        (
            "input_shape is required for a PyTorch model",
            "e.g. input_shape=(1, 8, 8)",
            "--input-shape is required for a PyTorch model (e.g. --input-shape 1,8,8)",
        ),
        (
            "the network outputs 10 scores per sample, but num_classes=5",
            "",
            "the network outputs 10 scores per sample, but --num-classes 5",
        ),
        (
            "cannot construct m:N with {}: bad",
            "check arch and arch_kwargs match the network that saved the weights",
            "cannot construct m:N with {}: bad (check --arch and --arch-kwargs match the network that saved the weights)",
        ),
        ("research architecture search failed", "", "research architecture search failed"),
    ],
)
def test_library_messages_are_reworded_for_the_command_line(message: str, hint: str, expected: str) -> None:
    from modelshield.cli._options import flag_words
    from modelshield.core.errors import InputError

    reworded = flag_words(InputError(message, hint=hint))
    assert type(reworded) is InputError and reworded.diagnostics() == expected


def test_raw_pixel_data_gets_a_units_note(
    demo_out: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """uint8 pixels in 0..255 with ε = 0.1 measure nothing; the summary says so instead of a bare verdict."""
    from modelshield.core.datasets import sklearn_dataset

    test = sklearn_dataset("digits", "test")
    raw = _npz(tmp_path / "raw.npz", (test.x[:40].numpy() * 255).astype(np.uint8), test.y[:40].numpy())
    model = ["--model", str(demo_out / "model.safetensors"), "--arch", "modelshield.demo:DigitsCNN"]
    args = ["assess", *model, "--attacks", "fgsm", "--eps", "0.1", "--out", str(tmp_path / "o")]
    code, out, err = invoke_main([*args, "--data", raw], monkeypatch, capsys)
    assert code in (0, 1), err
    assert "inputs range over [0, 255]" in out + err and "0.04% of that range" in out + err
    scaled = _npz(tmp_path / "scaled.npz", test.x[:40].numpy(), test.y[:40].numpy())
    code, out, err = invoke_main([*args, "--data", scaled], monkeypatch, capsys)
    assert code == 0, err
    assert "ε is in input units" not in out + err
