"""`modelshield assess` budget flags for C&W, APGD and HopSkipJump, strict attack lists, and 0-of-0 rates."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from entrypoint import invoke_main

from modelshield.cli.main import main

BUDGETS = ["--apgd-steps", "3", "--cw-steps", "4", "--hsj-queries", "20,40"]
DEMO = ["assess", "--demo", "--samples", "30", "--attacks", "apgd-ce,apgd-dlr,cw,hopskipjump", *BUDGETS]


@pytest.fixture(scope="module")
def demo_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("budgets")
    mp = pytest.MonkeyPatch()
    mp.setattr(sys, "argv", ["modelshield", *DEMO, "--out", str(out)])
    try:
        main()
    except SystemExit as exc:
        assert not exc.code, exc.code
    finally:
        mp.undo()
    return out


def test_budget_flags_reach_the_attacks(demo_out: Path) -> None:
    report = json.loads((demo_out / "report.json").read_text())
    params = {(r["attack"], r["params"].get("max_queries")): r["params"] for r in report["attacks"]}
    assert params[("apgd-ce", None)]["steps"] == 3 and params[("apgd-dlr", None)]["steps"] == 3
    assert params[("cw-l2", None)]["steps"] == 4
    assert {q for a, q in params if a == "hopskipjump"} == {20, 40}
    assert next(c for c in report["query_curves"] if c["attack"] == "hopskipjump")["budgets"] == [20, 40]
    assert "--cw-steps 4" in report["command"]


@pytest.mark.parametrize(
    "args, words",
    [
        (["--attacks", "fgsm,,pgd"], "--attacks 'fgsm,,pgd' has an empty name"),
        (["--attacks", "fgsm,pgd,"], "has an empty name"),
        (["--detectors", "--detector-list", "feature-squeezing,"], "--detector-list"),
        (["--cw-steps", "0"], "--cw-steps must be at least 1"),
        (["--apgd-steps", "0"], "--apgd-steps must be at least 1"),
        (["--hsj-queries", "100,0"], "--hsj-queries: '0' is not a whole number"),
        (["--hsj-queries", "100,abc"], "--hsj-queries: 'abc' is not a whole number"),
        (["--hsj-queries", "100,,300"], "--hsj-queries '100,,300' has an empty name"),
    ],
)
def test_bad_lists_and_budgets_are_one_line_exit_2(
    args: list[str], words: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = invoke_main(["assess", "--demo", "--out", str(tmp_path / "o"), *args], monkeypatch, capsys)
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), err
    assert words in lines[0]


def test_success_over_no_correct_sample_reads_n_a(
    demo_out: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Labels the model gets all wrong: nothing to fool, so the success column says n/a, not 0.0%."""
    from modelshield.core.datasets import sklearn_dataset
    from modelshield.integrity.safe_load import load_model

    weights = demo_out / "model.safetensors"
    model = load_model(weights, arch="modelshield.demo:DigitsCNN", input_shape=(1, 8, 8), num_classes=10)
    x = sklearn_dataset("digits", "test").x[:30]
    wrong = (model.predict(x) + 1) % 10
    data = tmp_path / "wrong.npz"
    np.savez(data, x=x.numpy(), y=wrong.numpy())
    args = ["assess", "--model", str(weights), "--arch", "modelshield.demo:DigitsCNN", "--data", str(data)]
    code, out, err = invoke_main(
        [*args, "--attacks", "fgsm", "--eps", "0.1", "--out", str(tmp_path / "o")], monkeypatch, capsys
    )
    assert code == 0, err
    row = next(line for line in (out + err).splitlines() if line.lstrip("│┃ ").startswith("fgsm"))
    assert "n/a" in row and "0.0%" in row  # robust accuracy 0.0 %, success n/a
