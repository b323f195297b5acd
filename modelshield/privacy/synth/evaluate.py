"""How far synthetic data is from the real table: distribution shift per column and pair, and utility.

Shift is measured on the domain's cells (total variation distance, ½·Σ|p − q|, 0 = same, 1 = disjoint) for
every column and for every pair the synthesizer measured, plus the Wasserstein-1 distance of each numeric
column divided by its range. Utility is TSTR (Esteban et al. 2017): a classifier trained on synthetic rows
and tested on real rows that the synthesizer never saw, next to the same classifier trained on real rows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from modelshield.core.errors import InputError
from modelshield.privacy.synth.domain import Categorical, Domain, Numeric

if TYPE_CHECKING:
    import pandas as pd


def _tvd(p: np.ndarray, q: np.ndarray) -> float:
    return float(0.5 * np.abs(p / p.sum() - q / q.sum()).sum())


def distribution_shift(
    real: pd.DataFrame, synthetic: pd.DataFrame, domain: Domain, pairs: list[tuple[int, int]]
) -> dict[str, Any]:
    """Per-column TVD (and normalised Wasserstein for numeric columns), and TVD of each pair in ``pairs``."""
    from scipy.stats import wasserstein_distance

    r, s = domain.encode(real), domain.encode(synthetic)
    columns: dict[str, dict[str, float]] = {}
    for j, col in enumerate(domain.columns):
        entry = {"tvd": _tvd(np.bincount(r[:, j], minlength=col.size), np.bincount(s[:, j], minlength=col.size))}
        if isinstance(col, Numeric):
            a, b = real[col.name].to_numpy(dtype=float), synthetic[col.name].to_numpy(dtype=float)
            entry["wasserstein_over_range"] = float(wasserstein_distance(a, b) / (col.upper - col.lower))
        columns[col.name] = entry
    two_way = {}
    for i, j in pairs:
        shape = (domain.sizes[i], domain.sizes[j])
        cells = [np.ravel_multi_index((t[:, i], t[:, j]), shape) for t in (r, s)]
        # counted over the cells either table occupies: a dense table of every pair of categories can be
        # terabytes for large declared domains, and empty cells add nothing to the distance
        _, where = np.unique(np.concatenate(cells), return_inverse=True)
        occupied = int(where.max()) + 1
        p = np.bincount(where[: len(cells[0])], minlength=occupied)
        q = np.bincount(where[len(cells[0]) :], minlength=occupied)
        two_way[f"{domain.names[i]} × {domain.names[j]}"] = _tvd(p.astype(float), q.astype(float))
    tvds = [c["tvd"] for c in columns.values()]
    return {
        "columns": columns,
        "pairs": two_way,
        "mean_1way_tvd": float(np.mean(tvds)),
        "mean_2way_tvd": float(np.mean(list(two_way.values()))) if two_way else None,
    }


def _features(frame: pd.DataFrame, domain: Domain, label: str) -> np.ndarray:
    """Numeric columns as numbers, categorical ones as their position in the domain (for tree models)."""
    cells = domain.encode(frame)
    cols = []
    for j, col in enumerate(domain.columns):
        if col.name == label:
            continue
        cols.append(frame[col.name].to_numpy(dtype=float) if isinstance(col, Numeric) else cells[:, j].astype(float))
    return np.column_stack(cols)


def tstr(
    real_train: pd.DataFrame,
    real_test: pd.DataFrame,
    synthetic: pd.DataFrame,
    domain: Domain,
    label: str,
    seed: int = 0,
) -> dict[str, float]:
    """Accuracy on ``real_test`` of a gradient-boosted classifier trained on real rows (TRTR) and on synthetic
    ones (TSTR), and the majority-class baseline."""
    from sklearn.dummy import DummyClassifier
    from sklearn.ensemble import HistGradientBoostingClassifier

    col = domain.column(label)
    if not isinstance(col, Categorical):
        raise InputError(f"--label {label!r} must be a categorical column, not a numeric one")
    categorical = [isinstance(c, Categorical) for c in domain.columns if c.name != label]
    j = domain.names.index(label)
    y_train, y_test, y_syn = (domain.encode(f)[:, j] for f in (real_train, real_test, synthetic))
    x_train, x_test, x_syn = (_features(f, domain, label) for f in (real_train, real_test, synthetic))

    def accuracy(x: np.ndarray, y: np.ndarray) -> float:
        if len(np.unique(y)) < 2:
            model: Any = DummyClassifier(strategy="most_frequent")
        else:
            model = HistGradientBoostingClassifier(categorical_features=np.array(categorical), random_state=seed)
        return float((model.fit(x, y).predict(x_test) == y_test).mean())

    baseline = float((y_test == np.bincount(y_train).argmax()).mean())
    return {
        "train_real_test_real": accuracy(x_train, y_train),
        "train_synthetic_test_real": accuracy(x_syn, y_syn),
        "majority_class": baseline,
    }
