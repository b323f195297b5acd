"""``modelshield extract`` on files a user has: a skops logistic regression and an .npz test set."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import skops.io as sio
from sklearn.linear_model import LogisticRegression

from modelshield.core.datasets import sklearn_dataset
from modelshield.core.loading import read_model

RunMain = Callable[..., tuple[int, str, str]]  # the run_main fixture of tests/conftest.py


def test_extract_cli_equation_on_a_skops_model(tmp_path: Path, run_main: RunMain) -> None:
    train, test = sklearn_dataset("wine", "train"), sklearn_dataset("wine", "test")
    lr = LogisticRegression(max_iter=5000).fit(train.x.numpy().astype(np.float64), train.y.numpy())
    sio.dump(lr, tmp_path / "victim.skops")
    np.savez(tmp_path / "test.npz", x=test.x.numpy(), y=test.y.numpy())
    out = tmp_path / "out"
    code, stdout, stderr = run_main(
        "extract", "--model", str(tmp_path / "victim.skops"), "--attack", "equation", "--budget", "100",
        "--data", str(tmp_path / "test.npz"), "--out", str(out),
    )  # fmt: skip
    assert code == 0, stderr
    report = json.loads((out / "extraction.json").read_text())
    assert report["queries"] == 14 and report["stop_reason"] == "complete" and report["fidelity"] == 1.0
    assert report["details"]["parameter_error"] < 1e-6
    assert "parameter error" in stdout
    arch = report["arch"]
    stolen = read_model(
        out / "stolen.safetensors", arch=arch["arch"], arch_kwargs=arch["arch_kwargs"], input_shape=(13,)
    )
    agree = (stolen.predict(test.x).numpy() == lr.predict(test.x.numpy().astype(np.float64))).mean()
    assert agree == 1.0


def test_extract_cli_refuses_bad_input_in_one_line(tmp_path: Path, run_main: RunMain) -> None:
    code, _, stderr = run_main(
        "extract", "--attack", "steal", "--budget", "10", "--data", "sklearn:iris", "--out", str(tmp_path),
    )  # fmt: skip
    assert code == 2 and "--attack must be one of" in stderr and "Traceback" not in stderr
    code, _, stderr = run_main(
        "extract", "--attack", "knockoff", "--budget", "10", "--data", "sklearn:iris", "--out", str(tmp_path),
    )  # fmt: skip
    assert code == 2 and "--model FILE or --target URL" in stderr
