"""Schema validation, outlier screens and median/MAD screening on breast-cancer rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer

from modelshield.attacks.poisoning import TabularBackdoor
from modelshield.core.errors import InputError, MissingFileError
from modelshield.defenses.poisoning import evaluate_detection
from modelshield.defenses.poisoning._sketch import Reservoir
from modelshield.defenses.poisoning.outliers import IsolationForestScreen, LocalOutlierFactorScreen
from modelshield.defenses.poisoning.robust import MADScreen
from modelshield.defenses.poisoning.schema import Schema, SchemaValidator

from .conftest import batches


@pytest.fixture(scope="module")
def cancer() -> tuple[np.ndarray, np.ndarray]:
    x, y = load_breast_cancer(return_X_y=True)
    return (x - x.min(0)) / (x.max(0) - x.min(0)), y


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    bunch = load_breast_cancer(as_frame=True)
    df = bunch.frame.copy()
    df["grade"] = np.where(df["mean radius"] > 15, "high", "low")
    return df


def test_schema_flags_each_broken_rule_with_its_reason(frame: pd.DataFrame) -> None:
    validator = SchemaValidator().fit(frame)
    assert not validator.predict(frame).any()  # the reference passes its own schema
    bad = frame.iloc[:4].copy()
    bad.loc[bad.index[0], "mean radius"] = 1e4
    bad.loc[bad.index[1], "grade"] = "extreme"
    bad.loc[bad.index[2], "target"] = np.nan
    reasons = validator.reasons(bad)
    assert reasons[0] == ["mean radius: above 28.11"]
    assert reasons[1] == ["grade: unknown category"]
    assert reasons[2] == ["target: missing value"]
    assert reasons[3] == []
    assert validator.predict(bad).tolist() == [True, True, True, False]


def test_schema_round_trips_through_json_and_streams_to_the_same_rules(frame: pd.DataFrame, tmp_path: Path) -> None:
    whole = SchemaValidator().fit(frame).schema_
    streamed = SchemaValidator().fit_stream(
        lambda: [(frame.iloc[i : i + 100], None) for i in range(0, len(frame), 100)]
    )
    assert streamed.schema_ == whole
    assert whole is not None
    path = tmp_path / "schema.json"
    whole.save(path)
    assert Schema.load(path) == whole
    rules = {c.name: c for c in whole.columns}
    assert rules["target"].kind == "integer" and rules["grade"].categories == ["high", "low"]


def test_schema_refuses_malformed_files(tmp_path: Path) -> None:
    (tmp_path / "s.json").write_text('{"version": 1, "columns": [{"name": "a", "kind": "float"}]}')
    with pytest.raises(InputError, match="kind among"):
        Schema.load(tmp_path / "s.json")
    with pytest.raises(MissingFileError):
        Schema.load(tmp_path / "missing.json")
    with pytest.raises(InputError, match="not valid JSON"):
        Schema.from_json("{")


def test_isolation_forest_catches_corrupted_rows(cancer: tuple[np.ndarray, np.ndarray]) -> None:
    x, _ = cancer
    rng = np.random.default_rng(0)
    rows = rng.choice(len(x), 28, replace=False)
    poisoned = np.zeros(len(x), bool)
    poisoned[rows] = True
    x = x.copy()
    x[rows] += rng.normal(0, 0.5, (28, x.shape[1]))
    r = evaluate_detection(IsolationForestScreen(0.05).fit_predict(x), poisoned)
    assert r.recall >= 0.9 and r.precision >= 0.85


def test_lof_catches_an_out_of_range_tabular_trigger(cancer: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = cancer
    p = TabularBackdoor(target=0, rate=0.02, columns=[3, 13, 23], values=[1.5] * 3).poison(x, y)
    r = evaluate_detection(LocalOutlierFactorScreen(0.02).fit_predict(p.x), p.poisoned)
    assert r.recall == 1.0 and r.precision >= 0.9


def test_mad_catches_a_trigger_and_streams_to_the_same_answer(cancer: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = cancer
    p = TabularBackdoor(target=0, rate=0.05, columns=[3, 13, 23], values=[1.5] * 3).poison(x, y)
    whole = MADScreen(8).fit(p.x)
    r = evaluate_detection(whole.predict(p.x), p.poisoned)
    assert r.recall == 1.0 and r.precision >= 0.5
    streamed = MADScreen(8)
    for xb, _ in batches(p.x, None, 64):
        streamed.partial_fit(xb)
    np.testing.assert_allclose(streamed.score_samples(p.x), whole.score_samples(p.x))
    # a reservoir smaller than the data: medians from a sample, the verdicts nearly the same
    sampled = MADScreen(8, capacity=300).fit_stream(lambda: batches(p.x, None, 64))
    assert (sampled.predict(p.x) != whole.predict(p.x)).mean() < 0.03


@pytest.mark.parametrize("per_class", [False, True])
@pytest.mark.parametrize("fpr", [0.01, 0.05])
def test_mad_fpr_is_the_share_of_clean_records_flagged(fpr: float, per_class: bool) -> None:
    """Raw breast-cancer (30 heavy-tailed features): fitted on 300 clean rows, it flags about ``fpr`` of the
    other 269 (a Gaussian 3.5 cut per feature flags ~30 %) and still every row with one feature ×8."""
    frame = load_breast_cancer(as_frame=True).frame.sample(frac=1, random_state=1)
    x, y = frame.drop(columns="target").to_numpy(), frame["target"].to_numpy()
    labels = (y[:300], y[300:]) if per_class else (None, None)
    screen = MADScreen(fpr=fpr, per_class=per_class).fit(x[:300], labels[0])
    assert MADScreen().fit(x[:300]).predict(x[300:]).mean() > 0.2  # the uncalibrated cut this replaces
    assert screen.predict(x[300:], labels[1]).mean() <= 3 * fpr + 2 / 269
    planted = x[300:].copy()
    planted[:, 0] *= 8  # mean radius ×8
    assert screen.predict(planted, labels[1]).all()


def test_mad_fpr_calibration_streams_and_weights_subsampled_classes() -> None:
    def draw(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        y = (np.arange(n) % 6 == 0).astype(np.int64)  # class 1: a sixth of the rows, heavy-tailed
        x = rng.normal(size=(n, 20))
        x[y == 1] = rng.standard_t(2, size=(int(y.sum()), 20))
        return x, y

    rng = np.random.default_rng(0)
    x, y = draw(rng, 6_000)
    whole = MADScreen(fpr=0.02, per_class=True).fit(x, y)
    streamed = MADScreen(fpr=0.02, per_class=True)
    for xb, yb in batches(x, y, 500):
        streamed.partial_fit(xb, yb)
    np.testing.assert_allclose(streamed.score_samples(x, y), whole.score_samples(x, y))
    assert streamed.threshold_ == whole.threshold_
    # a 1,000-row reservoir per class keeps a fifth of class 0 and all of class 1: unweighted, class 1's
    # heavy tails would fill half the calibration sample and the rate would fall to ~0.7 %
    sampled = MADScreen(fpr=0.02, per_class=True, capacity=1_000).fit_stream(lambda: batches(x, y, 500))
    fresh, fresh_y = draw(rng, 20_000)
    for screen in (whole, sampled):
        assert abs(screen.predict(fresh, fresh_y).mean() - 0.02) < 0.006


def test_outlier_screens_stream_to_the_in_memory_answer(cancer: tuple[np.ndarray, np.ndarray]) -> None:
    x, _ = cancer
    for screen in (IsolationForestScreen, LocalOutlierFactorScreen):
        whole = screen(0.05).fit(x).score_samples(x)
        streamed = screen(0.05).fit_stream(lambda: batches(x, None, 50)).score_samples(x)
        np.testing.assert_allclose(streamed, whole)


def test_reservoir_keeps_a_uniform_sample_in_bounded_memory() -> None:
    res = Reservoir(1000, seed=1)
    for start in range(0, 100_000, 7_000):
        res.add(np.arange(start, min(start + 7_000, 100_000), dtype=np.float64))
    assert res.sample.shape == (1000,) and res.seen == 100_000
    assert abs(np.median(res.sample) - 50_000) < 4_000  # rank error ~ 1/sqrt(1000)
    assert len(np.unique(res.sample)) == 1000


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda: IsolationForestScreen(0.7), "contamination"),
        (lambda: MADScreen(-1), "positive"),
        (lambda: MADScreen(3.5, fpr=0.01), "not both"),
        (lambda: MADScreen(fpr=0.7), "share of clean records"),
        (lambda: MADScreen().fit(np.array([[1.0, np.nan]])), "NaN"),
        (lambda: MADScreen().fit(np.arange(3.0)), "rows"),
        (lambda: MADScreen().score_samples(np.zeros((2, 2))), "not fitted"),
        (lambda: MADScreen(per_class=True).fit(np.zeros((2, 2))), "needs labels"),
        (lambda: MADScreen().fit(np.zeros((3, 2))).predict(np.zeros((3, 5))), "5 features"),
        (lambda: IsolationForestScreen().fit_stream([(np.zeros((3, 2)), None)]), "callable"),
        (lambda: IsolationForestScreen().fit_stream(lambda: []), "empty"),
        (lambda: SchemaValidator().fit(np.arange(4)), "rows of columns"),
    ],
)
def test_bad_input_is_one_line_input_error(make: object, words: str) -> None:
    with pytest.raises(InputError, match=words) as info:
        make()  # type: ignore[operator]
    assert "\n" not in str(info.value)


def test_streaming_memory_is_bounded_by_the_reservoir_not_the_stream() -> None:
    import tracemalloc

    def stream(n_batches: int) -> object:
        def batches_() -> object:
            rng = np.random.default_rng(0)
            return ((rng.normal(size=(1000, 30)), None) for _ in range(n_batches))

        return batches_

    peaks = []
    for n_batches in (10, 200):  # 10,000 and 200,000 rows (48 MB of float64)
        tracemalloc.start()
        screen = MADScreen(capacity=5_000).fit_stream(stream(n_batches))  # type: ignore[arg-type]
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        assert screen.median_[0].shape == (30,)
    assert peaks[1] < 4 * 2**20 and peaks[1] < 1.5 * peaks[0]
