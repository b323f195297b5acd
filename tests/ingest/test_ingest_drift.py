"""Drift is tested on every record that came in, not on what the screens let through.

A random split of one real dataset (scikit-learn's breast-cancer table) must not drift, even though the
detectors quarantine some of its extreme records; a column shifted in the incoming half must drift, alone.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from modelshield.ingest import IngestConfig, ingest


@pytest.fixture
def split(tmp_path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The breast-cancer table shuffled, with a random categorical ``site``: 300 reference rows, 269 incoming."""
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame.sample(frac=1, random_state=1)
    frame["site"] = np.random.default_rng(0).choice(["north", "south", "east"], size=len(frame))
    return frame.iloc[:300], frame.iloc[300:]


def _run(tmp_path: Path, reference: pd.DataFrame, incoming: pd.DataFrame) -> dict:
    ref, new = tmp_path / "bc_ref.csv", tmp_path / "bc_cur.csv"
    reference.to_csv(ref, index=False)
    incoming.to_csv(new, index=False)
    result = ingest(new, tmp_path / "out", IngestConfig(reference=ref, label="target"))
    assert result.quarantined > 0  # the screens did trim the incoming set, which is what biased the old check
    return result.report


def test_a_random_split_of_one_dataset_does_not_drift(tmp_path: Path, split: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    reference, incoming = split
    report = _run(tmp_path, reference, incoming)
    assert report["drift"]["drifted"] == []
    assert report["drift"]["tested_on"] == "all records read"
    found = {d["column"]: d for d in report["drift"]["features"]}
    assert found["site"]["test"] == "chi2"
    for column in reference.columns.drop("site"):  # every record read is in the sample (269 < sample size)
        ks = stats.ks_2samp(reference[column], incoming[column])
        assert found[column]["statistic"] == pytest.approx(float(ks.statistic), abs=1e-6), column


def test_a_shifted_column_drifts_alone(tmp_path: Path, split: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    reference, incoming = split
    incoming = incoming.copy()
    incoming["mean texture"] += 0.6 * reference["mean texture"].std()  # each value still plausible on its own
    report = _run(tmp_path, reference, incoming)
    assert report["drift"]["drifted"] == ["mean texture"]
