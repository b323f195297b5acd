"""Does the incoming table look like the trusted reference? One test per feature, in bounded memory.

Numeric features: the two-sample Kolmogorov–Smirnov test between the reference column and a fixed-size
sample of the incoming column. Categorical features: Pearson's χ² test of homogeneity on the full counts
(reference vs incoming), categories unseen in the reference pooled into one cell.

A feature is flagged when ``p < alpha`` **and** the effect is at least ``min_effect`` (KS statistic D, or
Cramér's V for χ²): with a million rows every test is "significant", so the p-value alone would flag
harmless shifts; the effect size says whether the shift is worth a person's attention.

The incoming sample is a bottom-k sketch: each record gets a pseudo-random priority from its position
(SplitMix64), and the ``sample_size`` smallest priorities are kept. It is uniform, needs ``sample_size``
rows of memory whatever the table's length, and does not depend on how the table was chunked.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from modelshield.defenses.poisoning.schema import Schema

if TYPE_CHECKING:
    import pandas as pd

ALPHA = 0.01
MIN_EFFECT = 0.1
SAMPLE_SIZE = 20_000


def splitmix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser over uint64 (wrapping arithmetic): a fast, well-mixed hash of each position."""
    with np.errstate(over="ignore"):
        z = x + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


@dataclass(frozen=True)
class FeatureDrift:
    """One feature's test against the reference."""

    column: str
    test: str  # "ks" or "chi2"
    statistic: float
    p_value: float
    effect: float  # KS D, or Cramér's V
    drifted: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "column": self.column,
            "test": self.test,
            "statistic": round(self.statistic, 6),
            "p_value": float(f"{self.p_value:.6g}"),
            "effect": round(self.effect, 6),
            "drifted": self.drifted,
        }


class DriftCheck:
    """Accumulate incoming chunks with ``update``; ``result`` runs the tests against the reference."""

    def __init__(
        self,
        reference: pd.DataFrame,
        schema: Schema,
        *,
        alpha: float = ALPHA,
        min_effect: float = MIN_EFFECT,
        sample_size: int = SAMPLE_SIZE,
    ) -> None:
        self.alpha, self.min_effect, self.sample_size = alpha, min_effect, sample_size
        self._numeric = [c.name for c in schema.columns if c.kind in ("number", "integer")]
        self._categorical = [c.name for c in schema.columns if c.kind in ("category", "bool")]
        self._reference_numeric = {c: reference[c].to_numpy(dtype=np.float64) for c in self._numeric}
        self._reference_counts = {
            c: reference[c].dropna().astype(str).value_counts().to_dict() for c in self._categorical
        }
        self._counts: dict[str, dict[str, int]] = {c: {} for c in self._categorical}
        self._priority = np.empty(0, dtype=np.uint64)
        self._sample = np.empty((0, len(self._numeric)), dtype=np.float64)

    def update(self, frame: pd.DataFrame, first_row: int) -> None:
        """Add one chunk (its records numbered from ``first_row`` in the whole table)."""
        for c in self._categorical:
            counts = self._counts[c]
            for value, n in frame[c].dropna().value_counts().items():
                counts[str(value)] = counts.get(str(value), 0) + int(n)
        if not self._numeric:
            return
        positions = np.arange(first_row, first_row + len(frame), dtype=np.uint64)
        priority = np.concatenate([self._priority, splitmix64(positions)])
        values = np.concatenate([self._sample, frame[self._numeric].to_numpy(dtype=np.float64)])
        if len(priority) > self.sample_size:
            keep = np.argpartition(priority, self.sample_size)[: self.sample_size]
            priority, values = priority[keep], values[keep]
        self._priority, self._sample = priority, values

    def result(self) -> list[FeatureDrift]:
        """One test per numeric and categorical feature, in schema order."""
        from scipy import stats

        found = []
        order = np.argsort(self._priority, kind="stable")  # the sample's order must not depend on chunking
        sample = self._sample[order]
        for j, c in enumerate(self._numeric):
            ref, new = self._reference_numeric[c], sample[:, j]
            ref, new = ref[~np.isnan(ref)], new[~np.isnan(new)]
            if len(ref) == 0 or len(new) == 0:
                continue
            ks = stats.ks_2samp(ref, new)
            d, p = float(ks.statistic), float(ks.pvalue)
            found.append(FeatureDrift(c, "ks", d, p, d, bool(p < self.alpha and d >= self.min_effect)))
        for c in self._categorical:
            found.extend(self._chi2(c))
        return found

    def _chi2(self, column: str) -> list[FeatureDrift]:
        from scipy import stats

        ref, new = self._reference_counts[column], self._counts[column]
        cells = sorted(ref)
        other = sum(n for v, n in new.items() if v not in ref)
        table = np.array([[ref[v] for v in cells] + [0], [new.get(v, 0) for v in cells] + [other]], dtype=np.float64)
        table = table[:, table.sum(axis=0) > 0]
        if table.shape[1] < 2 or table[1].sum() == 0:
            return []
        chi2, p, _, _ = stats.chi2_contingency(table, correction=False)
        v = float(np.sqrt(chi2 / (table.sum() * (min(table.shape) - 1))))
        return [FeatureDrift(column, "chi2", float(chi2), float(p), v, bool(p < self.alpha and v >= self.min_effect))]
