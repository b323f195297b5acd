"""Drift tests on real tables (scikit-learn's bundled sets): calibrated on random splits, sharp on shifts, exact
under chunking, and close to the textbook statistics they approximate."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon
from sklearn.datasets import load_breast_cancer, load_digits

from modelshield.core.errors import InputError
from modelshield.monitor import stattests
from modelshield.monitor.drift import DriftConfig, detect_drift
from modelshield.monitor.sketch import build_sketch
from modelshield.monitor.tables import chunk_source


def _columns(x: np.ndarray, names: list[str]) -> dict[str, np.ndarray]:
    return {n: x[:, j] for j, n in enumerate(names)}


def _cancer() -> tuple[np.ndarray, list[str]]:
    bunch = load_breast_cancer()
    return bunch.data, [str(n) for n in bunch.feature_names]


def _sketch(cols: dict[str, np.ndarray], reservoir: int = 200) -> object:
    return build_sketch(chunk_source(cols), bins=200, sample=max(reservoir, 2000), reservoir=reservoir)


def test_random_splits_rarely_drift() -> None:
    """Two halves of one table, split at random, come from one distribution: each KS test should reject about
    α of the time (a little less: D is read at the bin edges), and the Bonferroni-corrected verdict at most α."""
    x, names = _cancer()
    rejections, verdicts, draws = 0, 0, 30
    for seed in range(draws):
        perm = np.random.default_rng(seed).permutation(len(x))
        ref, cur = x[perm[:285]], x[perm[285:]]
        sketch = build_sketch(chunk_source(_columns(ref, names)), bins=200, sample=285, reservoir=50)
        report = detect_drift(sketch, chunk_source(_columns(cur, names)), DriftConfig(mmd=False, correction="none"))
        rejections += sum(f.drift for f in report.features)
        verdicts += any(f.p_value is not None and f.p_value < 0.05 / len(names) for f in report.features)
    rate = rejections / (draws * len(names))
    assert 0.01 <= rate <= 0.08, rate  # nominal 0.05; 900 correlated tests
    assert verdicts <= 4  # Bonferroni: ≤ α = 5 % of 30 in expectation; 4 allows for chance


def test_shifted_feature_drifts_alone() -> None:
    x, names = _cancer()
    perm = np.random.default_rng(0).permutation(len(x))
    ref, cur = x[perm[:285]], x[perm[285:]].copy()
    j = names.index("mean radius")
    cur[:, j] *= 1.15  # tumours measured 15 % larger: a recalibrated instrument
    report = detect_drift(_sketch(_columns(ref, names)), chunk_source(_columns(cur, names)))
    assert report.drift and report.drifted == ["mean radius"]
    radius = next(f for f in report.features if f.feature == "mean radius")
    assert radius.test == "ks" and radius.p_value is not None and radius.p_value < report.alpha_per_test
    assert radius.measures["wasserstein"] > 0.3 and radius.measures["psi"] > 0.1


def test_many_chunks_equal_one() -> None:
    x, names = _cancer()
    x = x[np.random.default_rng(1).permutation(len(x))]
    cols = _columns(x[:300], names)
    cur = _columns(x[300:] * 1.02, names)
    sketch = _sketch(cols)
    one = detect_drift(sketch, chunk_source(cur)).to_dict()
    many = detect_drift(sketch, chunk_source(cur, chunk_rows=13)).to_dict()
    assert one["drift"] == many["drift"]
    for a, b in zip(one["features"], many["features"], strict=True):
        assert a["drift"] == b["drift"] and a["statistic"] == pytest.approx(b["statistic"], rel=1e-9, abs=1e-12)
        assert a["measures"] == pytest.approx(b["measures"], rel=1e-9, abs=1e-12)
    assert one["multivariate"]["statistic"] == pytest.approx(many["multivariate"]["statistic"], rel=1e-9)


def test_binned_statistics_bracket_the_exact_ones() -> None:
    """KS at the edges ≤ scipy's exact D ≤ the stated upper bound; Wasserstein within its stated error;
    on digits' integer pixels (ties everywhere) as well as on continuous features."""
    rng = np.random.default_rng(3)
    digits = load_digits().data
    x, _ = _cancer()
    for a, b in ((x[:280, 0], x[280:, 0] * 1.05), (digits[:900, 20], digits[900:, 20] + rng.integers(0, 2, 897))):
        sketch = build_sketch(chunk_source({"v": a}), bins=100, sample=len(a), reservoir=10)
        f = detect_drift(sketch, chunk_source({"v": b}), DriftConfig(mmd=False)).features[0]
        exact = stats.ks_2samp(a, b)
        assert f.measures["ks"] <= exact.statistic + 1e-12 <= f.measures["ks_upper"] + 1e-12
        assert f.measures["ks"] == pytest.approx(exact.statistic, abs=0.03)
        w = stats.wasserstein_distance(a, b) / a.std()
        assert abs(f.measures["wasserstein"] - w) <= f.measures["wasserstein_error"] + 1e-9


def test_measures_match_their_definitions() -> None:
    r, c = np.array([50, 30, 20, 0]), np.array([40, 30, 20, 10])
    assert stattests.jensen_shannon(r, c) == pytest.approx(jensenshannon(r / 100, c / 100, base=2))
    pr, pc = np.maximum(r / 100, stattests.PSI_FLOOR), c / 100
    assert stattests.psi(r, c) == pytest.approx(float(np.sum((pc - pr) * np.log(pc / pr))))
    chi2, p = stattests.chi2_homogeneity(r, c)
    expected = stats.chi2_contingency(np.vstack([r, c]), correction=False)
    assert (chi2, p) == pytest.approx((expected[0], expected[1]))


def test_unseen_and_vanished_categories() -> None:
    rng = np.random.default_rng(0)
    ref = {"colour": rng.choice(["red", "green", "blue"], 3000), "size": rng.normal(size=3000)}
    sketch = _sketch(ref)
    same = {"colour": rng.choice(["red", "green", "blue"], 1000), "size": rng.normal(size=1000)}
    assert not detect_drift(sketch, chunk_source(same)).drift
    new = {"colour": rng.choice(["red", "green", "mauve"], 1000), "size": rng.normal(size=1000)}
    report = detect_drift(sketch, chunk_source(new))
    colour = report.features[0]
    assert report.drifted == ["colour"] and colour.test == "chi2"
    assert colour.measures["other_share"] == pytest.approx(1 / 3, abs=0.05)  # "mauve", never seen
    assert colour.measures["js"] > 0.3


def test_a_column_gone_empty_drifts() -> None:
    rng = np.random.default_rng(4)
    sketch = _sketch({"a": rng.normal(size=500), "b": rng.normal(size=500), "c": rng.choice(["x", "y"], 500)})
    gone = {"a": np.full(300, np.nan), "b": rng.normal(size=300), "c": np.array([None] * 300, dtype=object)}
    report = detect_drift(sketch, chunk_source(gone, categorical=["c"]))
    assert report.drifted == ["a", "c"] and {f.test for f in report.features if f.drift} == {"missing"}
    assert report.to_dict()["features"][0]["measures"]["missing_current"] == 1.0
    assert "mean_current" not in report.features[0].measures  # no NaN in the JSON


def test_mmd_sees_a_joint_change_marginals_miss() -> None:
    """Two features whose correlation flips sign: each marginal is unchanged, the joint distribution is not."""
    rng = np.random.default_rng(1)

    def pair(rho: float, n: int) -> dict[str, np.ndarray]:
        z = rng.multivariate_normal([0, 0], [[1, rho], [rho, 1]], n)
        return {"a": z[:, 0], "b": z[:, 1]}

    sketch = _sketch(pair(0.8, 4000), reservoir=300)
    report = detect_drift(sketch, chunk_source(pair(-0.8, 4000)), DriftConfig(mmd_permutations=200))
    assert report.drifted == [] and report.multivariate is not None and report.multivariate.drift
    assert report.drift
    clean = detect_drift(sketch, chunk_source(pair(0.8, 4000)), DriftConfig(mmd_permutations=200))
    assert clean.multivariate is not None and not clean.multivariate.drift


def test_mmd_p_values_are_calibrated() -> None:
    """Under no change the permutation p-value is uniform: about α of random splits reject at α."""
    x, _ = _cancer()
    x = (x - x.mean(0)) / x.std(0)
    ps = []
    for seed in range(30):
        perm = np.random.default_rng(seed).permutation(len(x))
        ps.append(stattests.mmd_permutation(x[perm[:100], :8], x[perm[100:200], :8], permutations=99, seed=seed)[1])
    assert 0 < np.mean(np.array(ps) < 0.2) <= 0.4  # nominal 0.2 over 30 draws
    assert min(ps) >= 1 / 100  # the observed split counts: never 0


def test_effect_size_tests_and_bad_input() -> None:
    """PSI's expected value without drift is about (bins − 1)(1/n + 1/m): on 285 rows a side it is 0.06 and
    crosses 0.1 by chance, so the effect-size test is checked on digits' 900 rows a side (0.02)."""
    x = load_digits().data
    names = [f"px{j}" for j in range(64)]
    x = x[np.random.default_rng(0).permutation(len(x))]
    sketch = _sketch(_columns(x[:900], names))
    cur = x[900:].copy()
    cur[:, 20] = np.minimum(cur[:, 20] + 4, 16)  # one pixel brighter, still in 0..16
    report = detect_drift(sketch, chunk_source(_columns(cur, names)), DriftConfig(test="psi", mmd=False))
    assert report.drifted == ["px20"]
    assert report.features[20].p_value is None and report.features[20].threshold == 0.1
    x, names = _cancer()
    sketch = _sketch(_columns(x[:285], names))
    cur = x[285:]
    with pytest.raises(InputError, match="lacks columns"):
        detect_drift(sketch, chunk_source({"mean radius": cur[:, 0]}))
    with pytest.raises(InputError, match="numeric in the reference|categorical here"):
        detect_drift(sketch, chunk_source({**_columns(cur, names), "mean radius": np.array(["big"] * len(cur))}))
    with pytest.raises(InputError, match="unknown drift test"):
        DriftConfig(test="t")  # type: ignore[arg-type]
