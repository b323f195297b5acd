"""The block-at-a-time numeric fold gives ``Moments.add`` and ``bin_counts`` column by column: the same counts,
bit-for-bit moments without missing values — on ties, values on the edges, infinities, empty and all-missing
columns, and blocks split across ``BLOCK_ELEMENTS``."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_digits

from modelshield.monitor import profile
from modelshield.monitor.profile import Moments, bin_counts, fold_numeric


def _per_column(edges: list[np.ndarray], columns: list[np.ndarray]) -> tuple[list[Moments], list[np.ndarray]]:
    moments = [Moments() for _ in columns]
    bins = [np.zeros(len(e) + 1, dtype=np.int64) for e in edges]
    for m, b, e, c in zip(moments, bins, edges, columns, strict=True):
        b += bin_counts(e, m.add(c))
    return moments, bins


def _folded(edges: list[np.ndarray], columns: list[np.ndarray]) -> tuple[list[Moments], list[np.ndarray]]:
    moments = [Moments() for _ in columns]
    bins = [np.zeros(len(e) + 1, dtype=np.int64) for e in edges]
    fold_numeric(moments, bins, edges, columns)
    return moments, bins


def _awkward() -> tuple[list[np.ndarray], list[np.ndarray]]:
    rng = np.random.default_rng(0)
    pixels = load_digits().data[:1000]
    columns = [pixels[:, j].copy() for j in range(0, 64, 7)]  # integer ties, values exactly on edges
    columns += [rng.normal(size=1000), np.full(1000, np.nan), np.ones(1000)]
    gappy = rng.normal(size=1000)
    gappy[rng.random(1000) < 0.2] = np.nan
    gappy[:3] = [np.inf, -np.inf, np.nan]
    columns.append(gappy)
    edges = [
        np.unique(np.quantile(c[np.isfinite(c)], np.linspace(0.1, 0.9, 9))) for c in columns if np.isfinite(c).any()
    ]
    edges.insert(len(columns) - 3, np.empty(0))  # all missing: the reference had no values either
    edges[-1] = np.concatenate([edges[-1], [np.inf]])  # an infinite edge
    edges[0] = np.empty(0)  # one bin only
    return edges, columns


@pytest.mark.parametrize("block", [1 << 16, 2500, 1000])  # one block; blocks of 2 columns; column by column
def test_fold_equals_column_by_column(block: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(profile, "BLOCK_ELEMENTS", block)
    edges, columns = _awkward()
    (m1, b1), (m2, b2) = _per_column(edges, columns), _folded(edges, columns)
    for j, (a, b) in enumerate(zip(m1, m2, strict=True)):
        assert b1[j].tolist() == b2[j].tolist(), j
        assert (a.count, a.missing, a.lo, a.hi) == (b.count, b.missing, b.lo, b.hi), j
        if np.isnan(columns[j]).any() or np.isinf(columns[j]).any():
            assert b.mean == pytest.approx(a.mean, rel=1e-12, nan_ok=True) and b.m2 == pytest.approx(
                a.m2, rel=1e-12, nan_ok=True
            )
        else:
            assert (a.mean, a.m2) == (b.mean, b.m2), j  # bit for bit


def test_fold_adds_to_what_is_there() -> None:
    edges, columns = _awkward()
    m1, b1 = _per_column(edges, [np.concatenate([c, c[:300] * 2]) for c in columns])
    m2, b2 = _folded(edges, columns)
    fold_numeric(m2, b2, edges, [c[:300] * 2 for c in columns])
    for j in range(len(columns)):
        assert b1[j].tolist() == b2[j].tolist()
        assert (m1[j].count, m1[j].missing) == (m2[j].count, m2[j].missing)
        assert m2[j].mean == pytest.approx(m1[j].mean, rel=1e-12, nan_ok=True)
