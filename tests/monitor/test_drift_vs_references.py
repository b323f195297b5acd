"""Drift statistics against scipy and the textbook formulas on the same data: KS p-values, PSI on the reference's
deciles, χ² on tables with sparse cells, small samples, and columns empty on one side."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from sklearn.datasets import load_digits

from modelshield.monitor import stattests
from modelshield.monitor.drift import DriftConfig, FeatureDrift, Test, detect_drift
from modelshield.monitor.sketch import build_sketch
from modelshield.monitor.tables import chunk_source


def _one(ref: np.ndarray, cur: np.ndarray, test: Test = "auto", bins: int = 1000) -> FeatureDrift:
    sketch = build_sketch(chunk_source({"v": ref}), bins=bins, sample=max(bins, len(ref)), reservoir=2)
    return detect_drift(sketch, chunk_source({"v": cur}), DriftConfig(test=test, mmd=False)).features[0]


def _textbook_psi(ref: np.ndarray, cur: np.ndarray) -> float:
    """PSI on the reference's deciles: bins (−∞, q1], (q1, q2], ..., (q9, ∞), tied deciles merged."""
    edges = np.unique(np.quantile(ref, np.arange(1, 10) / 10, method="inverted_cdf"))
    r = np.bincount(np.searchsorted(edges, ref, side="left"), minlength=len(edges) + 1) / len(ref)
    c = np.bincount(np.searchsorted(edges, cur, side="left"), minlength=len(edges) + 1) / len(cur)
    r, c = np.maximum(r, 1e-4), np.maximum(c, 1e-4)
    return float(np.sum((c - r) * np.log(c / r)))


def test_psi_is_the_textbook_decile_psi() -> None:
    """Continuous data (every value its own fine bin) and digits' integer pixels (ties at the deciles)."""
    rng = np.random.default_rng(0)
    pixels = load_digits().data
    cases = [
        (rng.normal(size=5000), rng.normal(0.3, 1.2, size=4000)),
        (pixels[:900, 36], pixels[900:, 36]),
        (pixels[:900, 20], np.clip(pixels[900:, 20] + 3, 0, 16)),
    ]
    for ref, cur in cases:
        assert _one(ref, cur, "psi").statistic == pytest.approx(_textbook_psi(ref, cur), rel=1e-9, abs=1e-12)


def test_psi_sees_mass_leave_a_constant_reference() -> None:
    """All of a constant column moving to a new value is the largest shift PSI can see (it read 0)."""
    f = _one(np.ones(500), np.full(500, 2.0), "psi")
    assert f.drift and f.statistic == pytest.approx(_textbook_psi(np.ones(500), np.full(500, 2.0)))
    assert _one(np.ones(500), np.full(500, 2.0), "js").drift


def test_ks_p_value_is_scipys() -> None:
    """Where every value of both samples is a bin edge (integer data the reference covers), D is scipy's exact D,
    and the p-value must be scipy's exact one for small samples and its asymptotic one for large ones."""
    rng = np.random.default_rng(1)
    for n, m, shift in ((5, 5, 0), (5, 5, 3), (40, 25, 2), (100, 60, 1), (900, 700, 1), (3000, 2000, 0)):
        ref, cur = rng.integers(0, 12, n), rng.integers(shift, 8 + shift, m)
        cur = cur[np.isin(cur, ref)]
        f = _one(ref, cur)
        method = "exact" if n * len(cur) <= stattests.EXACT_KS_CELLS else "asymp"
        expected = stats.ks_2samp(ref, cur, method=method)
        assert f.statistic == pytest.approx(expected.statistic, abs=1e-12)
        assert f.p_value == pytest.approx(expected.pvalue, rel=1e-6, abs=1e-12), (n, m, method)
    ref_c, cur_c = rng.normal(size=500), rng.normal(0.2, 1, size=400)  # continuous: D is bracketed
    f = _one(ref_c, cur_c)
    assert f.measures["ks"] <= stats.ks_2samp(ref_c, cur_c).statistic + 1e-12 <= f.measures["ks_upper"] + 1e-12


def test_small_samples() -> None:
    """n = 5: identical data never drifts; disjoint samples drift under KS (scipy's exact p = 0.0079)."""
    x = np.array([0.3, 1.2, -0.7, 2.2, 0.9])
    tests: tuple[Test, ...] = ("auto", "psi", "js", "wasserstein")
    for test in tests:
        assert not _one(x, x.copy(), test, bins=5).drift, test
    disjoint = _one(x, x + 10)
    assert disjoint.drift and disjoint.p_value == pytest.approx(2 / 252)
    colours = np.array(["red", "red", "blue", "green", "red"], dtype=object)
    sketch = build_sketch(chunk_source({"c": colours}), bins=5, sample=5, reservoir=2)
    assert not detect_drift(sketch, chunk_source({"c": colours.copy()}), DriftConfig(mmd=False)).drift


@pytest.mark.parametrize("n", [1500, 2000, 3000])
def test_identifier_columns_do_not_drift_by_sample_size(n: int) -> None:
    """A fresh unique id per row is the same distribution at any size: nearly every χ² cell is expected below 1,
    where the test's χ² approximation is void (Cochran's rule: expected counts ≥ 5). The verdict flipped with n."""
    rng = np.random.default_rng(n)
    ref = np.array([f"u{v}" for v in rng.integers(0, 10**9, 2000)], dtype=object)
    cur = np.array([f"u{v}" for v in rng.integers(0, 10**9, n)], dtype=object)
    sketch = build_sketch(chunk_source({"id": ref}), bins=100, sample=2000, reservoir=2)
    f = detect_drift(sketch, chunk_source({"id": cur}), DriftConfig(mmd=False)).features[0]
    assert f.test == "chi2" and not f.drift, (f.statistic, f.p_value)
    effect_sizes: tuple[Test, ...] = ("psi", "js")
    for test in effect_sizes:  # PSI read 0.99 and JS 0.56 at n = 2000, 0.003 and 0.16 at 20,000
        f = detect_drift(sketch, chunk_source({"id": cur}), DriftConfig(test=test, mmd=False)).features[0]
        assert f.test == test and not f.drift, (test, f.statistic)


def test_sparse_categories_still_show_a_real_shift() -> None:
    """Pooling sparse cells must not hide a shift among the frequent ones, nor one onto rare values."""
    rng = np.random.default_rng(5)
    common = ["a", "b", "c"] + [f"rare{i}" for i in range(200)]
    weights = np.array([0.3, 0.3, 0.3] + [0.1 / 200] * 200)
    ref = rng.choice(common, 3000, p=weights).astype(object)
    shifted = rng.choice(common, 3000, p=np.array([0.5, 0.2, 0.2] + [0.1 / 200] * 200)).astype(object)
    to_rare = rng.choice(common, 3000, p=np.array([0.2, 0.2, 0.2] + [0.4 / 200] * 200)).astype(object)
    same = rng.choice(common, 3000, p=weights).astype(object)
    sketch = build_sketch(chunk_source({"c": ref}), bins=100, sample=3000, reservoir=2)
    deciders: tuple[Test, ...] = ("auto", "psi", "js")
    for test in deciders:
        verdict = {
            name: detect_drift(sketch, chunk_source({"c": cur}), DriftConfig(test=test, mmd=False)).features[0].drift
            for name, cur in (("shifted", shifted), ("to_rare", to_rare), ("same", same))
        }
        assert verdict == {"shifted": True, "to_rare": True, "same": False}, test


def test_a_column_that_fills_in_drifts() -> None:
    """Empty in the reference, full now (the mirror of a column gone empty): every test read 'no difference'."""
    rng = np.random.default_rng(2)
    ref = {"a": np.full(300, np.nan), "c": np.array([None] * 300, dtype=object), "b": rng.normal(size=300)}
    cur = {"a": rng.normal(size=200), "c": np.array(["x"] * 200, dtype=object), "b": rng.normal(size=200)}
    sketch = build_sketch(chunk_source(ref), bins=50, sample=300, reservoir=10)
    report = detect_drift(sketch, chunk_source(cur), DriftConfig(mmd=False))
    assert report.drifted == ["a", "c"]
    assert {f.feature: f.test for f in report.features}["a"] == "missing"
    empty = {"a": np.full(200, np.nan), "c": np.array([None] * 200, dtype=object), "b": cur["b"]}
    both_empty = detect_drift(sketch, chunk_source(empty), DriftConfig(mmd=False))
    assert not both_empty.drift
