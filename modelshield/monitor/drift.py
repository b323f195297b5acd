"""Drift of current data against a reference sketch, read in one streaming pass with bounded memory.

Every feature gets every measure its type allows (KS, PSI, Jensen–Shannon, normed Wasserstein for numeric
features; χ², PSI and Jensen–Shannon for categorical ones) and one of them decides, by default:

* ``auto``: KS for numeric features, χ² for categorical ones, drift when p < α. With several features the
  per-test α is divided by the number of tests (Bonferroni, ``correction="bonferroni"``, the default; with the
  MMD test on, it takes α/2 and the features share the other α/2), so on data that has not drifted the chance
  that *anything* is flagged stays at most α; ``correction="none"`` keeps α per test (with 50 features, about
  92 % of clean checks would then flag something at α = 0.05).
* ``psi``: drift when PSI ≥ 0.1 (on the reference's deciles for numeric features) — the usual "moderate shift"
  line, as Evidently's default; ``js``: Jensen–Shannon distance ≥ 0.1; ``wasserstein``: Wasserstein-1 divided
  by the reference's standard deviation ≥ 0.1 (Evidently's "normed" Wasserstein; numeric features only, χ²
  decides categorical ones). These are effect sizes, not tests: they do not grow more sensitive with more rows.

A column that is empty in the current data but was not in the reference drifts (test ``missing``), whatever the
deciding test: with no values left, every distribution test would read "no difference"; so does one that was empty
in the reference and has values now. Categorical measures (χ², PSI, Jensen–Shannon) compare the categories with
expected counts of at least 5 in both samples (Cochran's rule for χ²), rarer ones pooled with the values the
reference rarely or never had: below that χ²'s p-value is void and proportions are noise, and an identifier column
(a fresh value every row) read as drift or not by sample size alone.

p-value tests on large samples flag shifts too small to matter (with a million rows a KS D of 0.002 is
significant); choose an effect-size test, or a smaller α, where that is not wanted. The multivariate MMD
permutation test (on the sketch's reservoir and an equal-size uniform sample of the current data; numeric
features standardised by the reference, missing values at the reference mean) counts as one more test in the
correction and catches joint changes the per-feature tests cannot see (a correlation that flips sign).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

from modelshield.core.errors import InputError
from modelshield.monitor import stattests
from modelshield.monitor.profile import Moments, check_kinds, fold_numeric
from modelshield.monitor.reservoir import Reservoir
from modelshield.monitor.sketch import CategoricalFeature, NumericFeature, ReferenceSketch
from modelshield.monitor.tables import ChunkSource

Test = Literal["auto", "ks", "chi2", "psi", "js", "wasserstein"]
TESTS: tuple[str, ...] = ("auto", "ks", "chi2", "psi", "js", "wasserstein")
#: decision thresholds of the effect-size measures
THRESHOLDS = {"psi": 0.1, "js": 0.1, "wasserstein": 0.1}
#: PSI on numeric features uses this many reference-quantile bins (merged from the sketch's fine bins)
PSI_BINS = 10
OTHER = "<other>"


@dataclass
class DriftConfig:
    """Which measure decides, at what level, and whether the multivariate MMD test runs."""

    test: Test = "auto"
    alpha: float = 0.05
    correction: Literal["bonferroni", "none"] = "bonferroni"
    mmd: bool = True
    mmd_permutations: int = 500
    #: rows a side for MMD (at most the sketch's reservoir): the permutation test costs (2·rows)² per permutation
    mmd_samples: int = 500
    seed: int = 1

    def __post_init__(self) -> None:
        if self.test not in TESTS:
            raise InputError(f"unknown drift test {self.test!r}; choose one of {', '.join(TESTS)}")
        if not 0 < self.alpha < 1:
            raise InputError(f"alpha must be between 0 and 1, not {self.alpha}")
        if self.correction not in ("bonferroni", "none"):
            raise InputError(f"correction must be bonferroni or none, not {self.correction!r}")
        if self.mmd_permutations < 1 or self.mmd_samples < 2:
            raise InputError("mmd_permutations must be at least 1 and mmd_samples at least 2")


@dataclass
class FeatureDrift:
    """One feature's verdict: the deciding test, its statistic and p-value (None for effect sizes), and every
    other measure computed for it."""

    feature: str
    type: str
    test: str
    statistic: float
    p_value: float | None
    threshold: float
    drift: bool
    measures: dict[str, float] = field(default_factory=dict)


@dataclass
class DriftReport:
    """The answer to "has the current data drifted from the reference?", per feature and overall."""

    drift: bool
    features: list[FeatureDrift]
    multivariate: FeatureDrift | None
    rows_reference: int
    rows_current: int
    alpha: float
    alpha_per_test: float
    correction: str
    sketch_digest: str

    @property
    def drifted(self) -> list[str]:
        return [f.feature for f in self.features if f.drift]

    def to_dict(self) -> dict[str, Any]:
        """The JSON contract: ``{"drift": bool, "features": [{"feature", "test", "statistic", "p_value",
        "drift", ...}], ...}``."""
        return {
            "drift": self.drift,
            "features": [asdict(f) for f in self.features],
            "multivariate": asdict(self.multivariate) if self.multivariate else None,
            "rows_reference": self.rows_reference,
            "rows_current": self.rows_current,
            "alpha": self.alpha,
            "alpha_per_test": self.alpha_per_test,
            "correction": self.correction,
            "sketch_digest": self.sketch_digest,
        }


@dataclass
class CurrentSummary:
    """The current data's summary on the reference's bins and categories. Summaries of disjoint parts of the data
    merge into the summary of the whole (what the gateway's replicas do with their shares of the traffic); the MMD
    test's uniform sample does not, and is dropped by a merge."""

    rows: int = 0
    moments: dict[str, Moments] = field(default_factory=dict)
    bins: dict[str, np.ndarray] = field(default_factory=dict)
    categories: dict[str, np.ndarray] = field(default_factory=dict)
    missing: dict[str, int] = field(default_factory=dict)
    sample: np.ndarray | None = None

    @classmethod
    def empty(cls, sketch: ReferenceSketch) -> CurrentSummary:
        """The summary of no rows, shaped by the sketch's features."""
        numeric = [f for f in sketch.features if isinstance(f, NumericFeature)]
        categorical = [f for f in sketch.features if isinstance(f, CategoricalFeature)]
        return cls(
            moments={f.name: Moments() for f in numeric},
            bins={f.name: np.zeros(len(f.counts), dtype=np.int64) for f in numeric},
            categories={f.name: np.zeros(len(f.categories) + 1, dtype=np.int64) for f in categorical},
            missing={f.name: 0 for f in categorical},
        )

    def merge(self, other: CurrentSummary) -> None:
        """Add the summary of other, disjoint rows of the same sketch's columns."""
        self.rows += other.rows
        for name, m in other.moments.items():
            self.moments[name].merge(m)
        for name, b in other.bins.items():
            self.bins[name] += b
        for name, c in other.categories.items():
            self.categories[name] += c
        for name, n in other.missing.items():
            self.missing[name] += n
        self.sample = None


def detect_drift(sketch: ReferenceSketch, current: ChunkSource, config: DriftConfig | None = None) -> DriftReport:
    """Stream ``current`` once and test every feature of ``sketch`` against it."""
    config = config or DriftConfig()
    return drift_of(sketch, summarise(sketch, current, config), config)


def drift_of(sketch: ReferenceSketch, summary: CurrentSummary, config: DriftConfig) -> DriftReport:
    """Test every feature of ``sketch`` against a summary of the current data (MMD only when it holds a sample)."""
    if summary.rows == 0:
        raise InputError("the current data has no rows")
    results = [_measure(f, summary) for f in sketch.features]
    per_test, mmd_alpha = _levels(config, sum(1 for r in results if _decider(r["type"], config.test) in ("ks", "chi2")))
    features = [_decide(r, config.test, per_test) for r in results]
    mmd = None
    if config.mmd and len(sketch.reservoir_columns) and summary.sample is not None:
        mmd = _mmd(sketch, summary, config, mmd_alpha)
    drift = any(f.drift for f in features) or (mmd is not None and mmd.drift)
    return DriftReport(
        drift, features, mmd, sketch.rows, summary.rows, config.alpha, per_test, config.correction, sketch.digest
    )


def _levels(config: DriftConfig, feature_tests: int) -> tuple[float, float]:
    """(level of each feature's p-value test, level of the MMD test).

    Bonferroni, weighted: with the MMD test on, it gets α/2 and the feature tests share the other half, so the
    chance of any false alarm stays ≤ α and the permutation test keeps a level its p-values can reach."""
    mmd_on = config.mmd
    if config.correction == "none":
        return config.alpha, config.alpha
    if not mmd_on or feature_tests == 0:
        return config.alpha / max(1, feature_tests), config.alpha
    return config.alpha / 2 / feature_tests, config.alpha / 2


def summarise(sketch: ReferenceSketch, current: ChunkSource, config: DriftConfig) -> CurrentSummary:
    """Stream ``current`` once onto the sketch's bins and categories (and a uniform sample when MMD is on)."""
    kinds = {f.name: f.type for f in sketch.features}
    numeric = [f for f in sketch.features if isinstance(f, NumericFeature)]
    categorical = [f for f in sketch.features if isinstance(f, CategoricalFeature)]
    index = {f.name: {c: i for i, c in enumerate(f.categories)} for f in categorical}
    s = CurrentSummary.empty(sketch)
    sampler = None
    if config.mmd:
        sampler = Reservoir(
            max(1, min(len(sketch.reservoir), config.mmd_samples)), len(sketch.reservoir_columns), config.seed
        )
    moments, bins, edges = (
        [s.moments[f.name] for f in numeric],
        [s.bins[f.name] for f in numeric],
        [f.edges for f in numeric],
    )
    for chunk in current():
        check_kinds(kinds, chunk, "the current data")
        s.rows += chunk.rows
        fold_numeric(moments, bins, edges, [chunk.numeric[f.name] for f in numeric])
        for c in categorical:
            counts, where = s.categories[c.name], index[c.name]
            for value, n in chunk.categorical[c.name].items():
                counts[where.get(value, -1)] += n  # the last slot: values the reference rarely or never had
            s.missing[c.name] += chunk.missing.get(c.name, 0)
        if sampler is not None:
            sampler.add([chunk.numeric[c] for c in sketch.reservoir_columns])
    s.sample = sampler.sample() if sampler is not None else None
    return s


def _measure(f: NumericFeature | CategoricalFeature, s: CurrentSummary) -> dict[str, Any]:
    if isinstance(f, CategoricalFeature):
        ref = np.array([*f.categories.values(), f.other], dtype=np.int64)
        cur = s.categories[f.name]
        pooled = stattests.pool_sparse(ref, cur)
        chi2, chi2_p = stattests.chi2_homogeneity(*pooled)
        total = cur.sum()
        return {
            "name": f.name, "type": "categorical", "chi2": chi2, "chi2_p": chi2_p,
            "psi": stattests.psi(*pooled), "js": stattests.jensen_shannon(*pooled),
            "other_share": float(cur[-1] / total) if total else 0.0,
            "missing_reference": f.missing / max(1, f.missing + f.count),
            "missing_current": s.missing[f.name] / max(1, s.rows),
        }  # fmt: skip
    cur, m = s.bins[f.name], s.moments[f.name]
    d, d_upper, ks_p = stattests.ks_binned(f.counts, cur)
    lo, hi = min(f.min, m.lo), max(f.max, m.hi)
    w, w_err = stattests.wasserstein_binned(f.edges, lo, hi, f.counts, cur) if m.count else (0.0, 0.0)
    scale = f.std if f.std > 0 else 1.0
    coarse_r, coarse_c = _coarse(f.counts, cur)
    return {
        "name": f.name, "type": "numeric", "ks": d, "ks_upper": d_upper, "ks_p": ks_p,
        "psi": stattests.psi(coarse_r, coarse_c), "js": stattests.jensen_shannon(coarse_r, coarse_c),
        "wasserstein": w / scale, "wasserstein_error": w_err / scale,
        "mean_reference": f.mean, **({"mean_current": m.mean} if m.count else {}),  # JSON has no NaN
        "missing_reference": f.missing / max(1, f.missing + f.count),
        "missing_current": m.missing / max(1, s.rows),
    }  # fmt: skip


def _coarse(ref: np.ndarray, cur: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Merge fine bins into the reference's decile bins (−∞, q1], (q1, q2], ..., (q9, ∞).

    Decile k closes the first fine bin where the reference's CDF reaches k/10; tied deciles leave empty groups
    (zero in both samples, so they add nothing). Every fine bin past the last decile is its own group's, so
    current mass moving beyond a reference that ends early (a constant column) is seen."""
    cum = np.cumsum(ref) / max(1, ref.sum())
    closing = np.searchsorted(cum, np.arange(1, PSI_BINS) / PSI_BINS - 1e-9, side="left")
    group = np.searchsorted(closing, np.arange(len(ref)), side="left")
    return np.bincount(group, ref, PSI_BINS), np.bincount(group, cur, PSI_BINS)


def _decider(kind: str, test: str) -> str:
    if test == "auto" or (kind == "categorical" and test in ("ks", "wasserstein")):
        return "ks" if kind == "numeric" else "chi2"
    if kind == "numeric" and test == "chi2":
        return "ks"
    return test


def _decide(r: dict[str, Any], test: str, per_test: float) -> FeatureDrift:
    name, kind = r.pop("name"), r.pop("type")
    chosen = _decider(kind, test)
    measures = {k: float(v) for k, v in r.items()}
    if (measures["missing_current"] == 1.0) != (measures["missing_reference"] == 1.0):
        # no values on one side to compare: every test would read "no difference", yet the column went empty (or
        # one that was empty in the reference filled in)
        return FeatureDrift(name, kind, "missing", 1.0, None, 1.0, True, measures)
    if chosen in ("ks", "chi2"):
        p = measures[f"{chosen}_p"]
        return FeatureDrift(name, kind, chosen, measures[chosen], p, per_test, p < per_test, measures)
    stat = measures[chosen]
    return FeatureDrift(name, kind, chosen, stat, None, THRESHOLDS[chosen], stat >= THRESHOLDS[chosen], measures)


def _mmd(sketch: ReferenceSketch, s: CurrentSummary, config: DriftConfig, alpha: float) -> FeatureDrift:
    assert s.sample is not None
    numeric = {f.name: f for f in sketch.features if isinstance(f, NumericFeature)}
    mean = np.array([numeric[c].mean for c in sketch.reservoir_columns])
    std = np.array([numeric[c].std or 1.0 for c in sketch.reservoir_columns])

    def standard(rows: np.ndarray) -> np.ndarray:
        z = (rows - mean) / std
        return np.where(np.isnan(z), 0.0, z)

    k = min(config.mmd_samples, len(sketch.reservoir), len(s.sample))
    x, y = standard(sketch.reservoir[:k]), standard(s.sample[:k])  # key order: any prefix is a uniform sample
    permutations = max(config.mmd_permutations, math.ceil(3 / alpha))  # so that p < alpha can happen at all
    mmd2, p, sigma = stattests.mmd_permutation(x, y, permutations, config.seed)
    measures = {
        "samples_reference": float(len(x)), "samples_current": float(len(y)), "bandwidth": sigma,
        "permutations": float(permutations),
    }  # fmt: skip
    return FeatureDrift("*", "multivariate", "mmd", mmd2, p, alpha, p < alpha, measures)


__all__ = [
    "THRESHOLDS",
    "TESTS",
    "CurrentSummary",
    "DriftConfig",
    "DriftReport",
    "FeatureDrift",
    "detect_drift",
    "drift_of",
    "summarise",
]
