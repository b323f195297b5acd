"""Released ranges as model inputs, and the decision threshold chosen again on anonymised records."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import f1_score

from modelshield.core.errors import InputError
from modelshield.privacy.anonymize import midpoints, recalibrated_threshold

ROOT = Path(__file__).resolve().parents[3]


def test_midpoints_of_ranges_numbers_and_stars() -> None:
    labels = pd.Series(["[30-39]", "42", "*", "[-5-5]", "[0.5-1.5]"], name="age")
    assert midpoints(labels, fill=50.0).tolist() == [34.5, 42.0, 50.0, 0.0, 1.0]
    with pytest.raises(InputError, match="'age' holds 'old'"):
        midpoints(pd.Series(["old"], name="age"), fill=0.0)


def test_the_threshold_maximises_f1_or_keeps_the_rate() -> None:
    rng = np.random.default_rng(0)
    y = rng.random(2000) < 0.25
    scores = np.clip(0.3 * y + rng.normal(0.2, 0.15, 2000), 0, 1)  # scores shifted down, as after generalising
    best = recalibrated_threshold(scores, y)
    grid = np.unique(scores)
    decided = scores[None, :] >= grid[:, None]  # every possible threshold at once
    f1s = 2 * (decided & y).sum(axis=1) / (decided.sum(axis=1) + y.sum())
    assert f1_score(y, scores >= best) == pytest.approx(f1s.max())
    assert f1_score(y, scores >= best) > f1_score(y, scores >= 0.5)
    at_rate = recalibrated_threshold(scores, y, target="rate", rate=0.2)
    assert (scores >= at_rate).mean() == pytest.approx(0.2, abs=0.002)
    with pytest.raises(InputError, match="needs a rate"):
        recalibrated_threshold(scores, y, target="rate")


@pytest.mark.slow
def test_adult_lab_runs_on_the_vendored_sample(capsys: pytest.CaptureFixture[str]) -> None:
    spec = importlib.util.spec_from_file_location("adult_lab", ROOT / "docs" / "labs" / "adult_lab.py")
    assert spec is not None and spec.loader is not None
    lab = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = lab
    spec.loader.exec_module(lab)
    lab.main(["--adult", str(ROOT / "tests" / "data" / "adult" / "adult_sample.csv")])
    out = capsys.readouterr().out
    assert "| raw |" in out and "k=10 mondrian" in out and "DP-SGD model" in out and "threshold re-tuned" in out
