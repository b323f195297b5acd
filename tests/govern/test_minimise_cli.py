"""``modelshield govern minimise`` from the command line: Markdown, HTML and JSON reports on a real table, and a
bad target as one line on stderr with exit code 2."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from entrypoint import invoke_main as _main


@pytest.fixture
def table(tmp_path: Path) -> Path:
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame[["worst radius", "worst concave points", "target"]].copy()
    frame["noise"] = np.random.default_rng(1).normal(size=len(frame))
    frame["zip"] = np.random.default_rng(2).integers(10000, 99999, len(frame))
    path = tmp_path / "cancer.csv"
    frame.to_csv(path, index=False)
    return path


def test_minimise_writes_json_and_html(
    table: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["govern", "minimise", str(table), "--target", "target", "--model", "logistic-regression", "--threads", "1"]
    code, out, err = _main([*base, "--format", "json", "--repeats", "3"], monkeypatch, capsys)
    assert code == 0, err
    doc = json.loads(out)
    assert "noise" in doc["recommended"] and "worst radius" not in doc["recommended"]
    zip_code = next(f for f in doc["features"] if f["feature"] == "zip")
    assert zip_code["personal_data"] == "quasi-identifier" and doc["within_threshold"] is True
    page = tmp_path / "min.html"
    code, _, err = _main(
        [*base, "--format", "html", "--out", str(page), "--method", "drop-column"], monkeypatch, capsys
    )
    assert code == 0 and "written to" in err
    assert "Personal data: zip (quasi-identifier) earns" in page.read_text()


def test_a_missing_target_is_one_line_and_exit_2(
    table: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _main(["govern", "minimise", str(table), "--target", "label"], monkeypatch, capsys)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1 and "no target column 'label'" in err
    code, _, err = _main(["govern", "minimise", str(table.with_suffix(".txt")), "-t", "x"], monkeypatch, capsys)
    assert code == 2 and "reads .csv and .parquet" in err
