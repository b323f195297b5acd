"""Drift on the pandas frames and files users bring: nullable dtypes with pd.NA, categoricals of numbers, dates,
booleans read back from Parquet, columns that are empty on one side, identifier columns. Each gives a verdict
that means something, or one clear error — never a traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from modelshield.core.errors import InputError
from modelshield.monitor.drift import DriftConfig, DriftReport, detect_drift
from modelshield.monitor.sketch import build_sketch
from modelshield.monitor.tables import chunk_source


def _gapped(values: np.ndarray, gaps: np.ndarray) -> np.ndarray:
    """The values as objects, None where ``gaps``."""
    out = values.astype(object)
    out[gaps] = None
    return out


def _frame(n: int, seed: int, days: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    gaps = rng.random(n) < 0.1
    start = pd.Timestamp("2025-01-01") + pd.Timedelta(days=days)
    return pd.DataFrame(
        {
            "amount": rng.lognormal(3, 1, n),
            "visits": pd.array(_gapped(rng.poisson(4, n), gaps), dtype="Int64"),
            "member": pd.array(_gapped(rng.random(n) < 0.3, gaps), dtype="boolean"),
            "plan": pd.Series(_gapped(rng.choice(["free", "pro", "team"], n), gaps), dtype="string"),
            "grade": pd.Categorical(rng.integers(1, 4, n)),
            "seen": start + pd.to_timedelta(rng.integers(0, 30 * 24, n), unit="h"),
            "seen_utc": (start + pd.to_timedelta(rng.integers(0, 30 * 24, n), unit="h")).tz_localize("UTC"),
            "wait": pd.to_timedelta(rng.exponential(60, n), unit="s"),
            "flag": rng.random(n) < 0.5,
        }
    )


def _drift(ref: object, cur: object, **config: object) -> DriftReport:
    sketch = build_sketch(chunk_source(ref), bins=100, sample=5000, reservoir=100)
    return detect_drift(sketch, chunk_source(cur), DriftConfig(mmd=False, **config))  # type: ignore[arg-type]


def test_pandas_dtypes_read_as_users_mean_them() -> None:
    """pd.NA in boolean and string columns is missing (it raised TypeError); a pandas Categorical is categorical
    even when its categories are numbers; dates and durations are numbers (seconds), not one category per value."""
    report = _drift(_frame(3000, 0), _frame(2000, 1))
    kinds = {f.feature: f.type for f in report.features}
    assert kinds == {
        "amount": "numeric", "visits": "numeric", "member": "categorical", "plan": "categorical",
        "grade": "categorical", "seen": "numeric", "seen_utc": "numeric", "wait": "numeric", "flag": "categorical",
    }  # fmt: skip
    assert not report.drift, report.drifted  # same distribution, other rows
    member = next(f for f in report.features if f.feature == "member")
    assert member.measures["missing_current"] == pytest.approx(0.1, abs=0.02)


def test_dates_a_month_later_drift_and_only_they() -> None:
    report = _drift(_frame(3000, 0), _frame(2000, 1, days=30))
    assert sorted(report.drifted) == ["seen", "seen_utc"]


def test_a_frame_sketch_reads_the_same_data_from_parquet_and_csv(tmp_path: Path) -> None:
    """The sketch made from a DataFrame is checked against files written from it by pandas: the same data must
    not drift (booleans were 'True' in one and 'true' in the other; dates were strings in the files)."""
    ref = _frame(3000, 0).drop(columns="wait")  # a CSV has no duration type: pandas writes "0 days 00:01:02"
    cur = _frame(2000, 1).drop(columns="wait")
    cur.to_parquet(tmp_path / "cur.parquet")
    cur.to_csv(tmp_path / "cur.csv", index=False)
    sketch = build_sketch(chunk_source(ref), bins=100, sample=5000, reservoir=100)
    forced = [f.name for f in sketch.features if f.type == "categorical"]
    direct = detect_drift(sketch, chunk_source(cur), DriftConfig(mmd=False))
    for path in (tmp_path / "cur.parquet", tmp_path / "cur.csv"):
        report = detect_drift(sketch, chunk_source(path, categorical=forced), DriftConfig(mmd=False))
        assert not report.drift, (path.name, report.drifted)
        for a, b in zip(direct.features, report.features, strict=True):
            if a.feature != "grade":  # categories of numbers: pandas writes 1, 2, 3 as text the same way
                assert a.statistic == pytest.approx(b.statistic, rel=1e-6, abs=1e-9), (path.name, a.feature)


def test_cli_on_a_parquet_of_mixed_dtypes(tmp_path: Path) -> None:
    """The installed command, as a user runs it: exit 0 on the same distribution, 2 and one line on a lost column."""
    _frame(3000, 0).to_parquet(tmp_path / "ref.parquet")
    _frame(2000, 1).to_parquet(tmp_path / "same.parquet")
    _frame(2000, 1, days=30).drop(columns=["plan"]).to_parquet(tmp_path / "gone.parquet")
    command = [str(Path(sys.executable).parent / "modelshield"), "monitor", "drift", "--no-mmd"]
    command += ["--reference", str(tmp_path / "ref.parquet"), "--current"]
    same = subprocess.run([*command, str(tmp_path / "same.parquet")], capture_output=True, text=True, timeout=60)
    assert same.returncode == 0, same.stdout + same.stderr
    gone = subprocess.run([*command, str(tmp_path / "gone.parquet")], capture_output=True, text=True, timeout=60)
    assert gone.returncode == 2
    assert gone.stderr.strip() == "error: the current data lacks columns the reference has: plan"


def test_a_parquet_file_keeps_the_frames_column_kinds(tmp_path: Path) -> None:
    """pandas records a Categorical in the Parquet file's metadata; the batches read back plain integers, and
    'grade' became a numeric column in the file's sketch but a categorical one in the frame's."""
    frame = _frame(2000, 3)
    frame.to_parquet(tmp_path / "ref.parquet")
    kinds = [
        {f.name: f.type for f in build_sketch(chunk_source(source), bins=50, sample=2000, reservoir=10).features}
        for source in (frame, tmp_path / "ref.parquet")
    ]
    assert kinds[0] == kinds[1] and kinds[1]["grade"] == "categorical"


def test_an_empty_column_in_a_csv_matches_the_frames(tmp_path: Path) -> None:
    """pandas holds an all-missing column as float NaN, a CSV of it has no values at all (Arrow's null type): it was
    read as text, and the check stopped on "column 'empty' is categorical here but numeric in the reference"."""
    rng = np.random.default_rng(7)
    ref = pd.DataFrame({"x": rng.normal(size=500), "empty": np.full(500, np.nan)})
    cur = pd.DataFrame({"x": rng.normal(size=400), "empty": np.full(400, np.nan)})
    cur.to_csv(tmp_path / "cur.csv", index=False)
    report = _drift(ref, tmp_path / "cur.csv")
    assert not report.drift and [f.type for f in report.features] == ["numeric", "numeric"]


def test_infinities_are_missing_not_nan_verdicts(tmp_path: Path) -> None:
    """±∞ (a ratio divided by zero) made the moments NaN: the sketch could not be saved ("internal error: Out of
    range float values are not JSON compliant") and the MMD statistic read NaN with a DRIFT verdict."""
    rng = np.random.default_rng(8)
    ref = pd.DataFrame({"ratio": rng.normal(size=400), "y": rng.normal(size=400)})
    cur = pd.DataFrame({"ratio": rng.normal(size=300), "y": rng.normal(size=300)})
    ref.loc[::50, "ratio"], cur.loc[::40, "ratio"] = np.inf, -np.inf
    ref.to_csv(tmp_path / "ref.csv", index=False)
    cur.to_csv(tmp_path / "cur.csv", index=False)
    command = [str(Path(sys.executable).parent / "modelshield"), "monitor"]
    sketch = subprocess.run(
        [*command, "sketch", "--reference", str(tmp_path / "ref.csv"), "-o", str(tmp_path / "s.json")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert sketch.returncode == 0, sketch.stderr
    drift = subprocess.run(
        [*command, "drift", "--reference", str(tmp_path / "s.json"), "--current", str(tmp_path / "cur.csv"), "-f", "json"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert drift.returncode == 0, drift.stdout + drift.stderr
    report = json.loads(drift.stdout)
    ratio = report["features"][0]
    assert ratio["measures"]["missing_current"] == pytest.approx(8 / 300)
    assert np.isfinite(report["multivariate"]["statistic"])
    direct = _drift(ref, cur)
    assert direct.features[0].measures["missing_current"] == pytest.approx(8 / 300)
    assert all(np.isfinite(v) for v in direct.features[0].measures.values())
    assert ref["ratio"].isin([np.inf]).sum() == 8  # the caller's frame is not changed


def test_repeated_column_names_are_one_clear_error(tmp_path: Path) -> None:
    """A frame or a CSV with two columns named alike: numpy's concatenation error (frames), or the second column
    silently taking the first one's place (CSV, Parquet)."""
    rng = np.random.default_rng(9)
    frame = pd.DataFrame(rng.normal(size=(50, 3)), columns=["a", "a", "b"])
    frame.to_csv(tmp_path / "dup.csv", index=False)
    for source in (frame, tmp_path / "dup.csv"):
        with pytest.raises(InputError, match="column 'a' appears twice"):
            build_sketch(chunk_source(source), bins=10, sample=50, reservoir=5)


def test_object_columns_of_lists_and_dicts_are_counted_as_text() -> None:
    """Unhashable values (JSON payloads parsed into lists and dicts) are categories by their text."""
    ref = pd.DataFrame({"tags": [["a", "b"], ["c"], None, {"k": 1}] * 50})
    report = _drift(ref, ref.iloc[:100])
    assert report.features[0].type == "categorical" and not report.drift
    assert report.features[0].measures["missing_current"] == pytest.approx(0.25)
