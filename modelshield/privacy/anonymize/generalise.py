"""From groups of rows to released values: labels, and the information each label loses.

Released values are strings: a number or a range ``[30-39]`` (inclusive), a date or a range of dates
``2021-03-01..2021-03-31`` (inclusive), a hierarchy label, or ``*``.
Information loss is the normalised certainty penalty (NCP, Xu et al. KDD 2006, "Utility-based
anonymization using local recoding"; ARX calls it loss / generalised information loss): per value, the
share of the attribute's range (numeric) or of its leaves (categorical) the label covers, 0 for an intact
value and 1 for ``*``.
"""

from __future__ import annotations

import numpy as np

from modelshield.privacy.anonymize.hierarchy import ROOT, IntervalHierarchy, TreeHierarchy
from modelshield.privacy.anonymize.tables import Encoded, day_text


def number(value: float) -> str:
    """A number as people write it: no trailing ``.0``."""
    return str(int(value)) if float(value).is_integer() else f"{value:.6g}"


def span_label(low: float, high: float, dates: bool = False) -> str:
    """An inclusive range as released: ``[30-39]``, or ``2021-03-01..2021-03-31`` on a date column."""
    if dates:
        return day_text(low) if low == high else f"{day_text(low)}..{day_text(high)}"
    return number(low) if low == high else f"[{number(low)}-{number(high)}]"


def region_labels(enc: Encoded, region: np.ndarray, regions: int) -> tuple[list[list[str]], np.ndarray]:
    """Mondrian's labels: each region's range (numeric) or lowest common ancestor (categorical).

    Returns the labels per column per region and each region's mean penalty over the columns."""
    order = np.argsort(region, kind="stable")
    starts = np.searchsorted(region[order], np.arange(regions))
    sorted_x = enc.x[order]
    lows = np.minimum.reduceat(sorted_x, starts, axis=0)
    highs = np.maximum.reduceat(sorted_x, starts, axis=0)
    domain_low, domain_high = enc.low_high()
    labels: list[list[str]] = []
    penalty = np.zeros(regions)
    for j, hier in enumerate(enc.hierarchies):
        if enc.numeric[j]:
            dates = enc.is_date(j)
            labels.append([span_label(a, b, dates) for a, b in zip(lows[:, j], highs[:, j], strict=True)])
            width = domain_high[j] - domain_low[j]
            penalty += (highs[:, j] - lows[:, j]) / width if width > 0 else 0.0
        else:
            assert isinstance(hier, TreeHierarchy)
            leaves = hier.leaves
            column = [hier.lca(leaves[int(a)], leaves[int(b)]) for a, b in zip(lows[:, j], highs[:, j], strict=True)]
            labels.append(column)
            penalty += _tree_penalty(hier, column)
    return labels, penalty / len(enc.hierarchies)


def _tree_penalty(hier: TreeHierarchy, labels: list[str]) -> np.ndarray:
    total = len(hier.leaves)
    if total <= 1:
        return np.zeros(len(labels))
    return np.array([(hier.leaf_count(label) - 1) / (total - 1) for label in labels])


class Levels:
    """Every column at every level of its hierarchy, as int codes per row, for the lattice search."""

    def __init__(self, enc: Encoded) -> None:
        self.enc = enc
        self.codes: list[list[np.ndarray]] = []  # column → level → code per row
        self.radix: list[list[int]] = []
        self.penalty: list[list[np.ndarray]] = []  # column → level → penalty per code
        low, high = enc.low_high()
        for j, hier in enumerate(enc.hierarchies):
            codes, radix, penalty = [], [], []
            for h in range(hier.height + 1):
                c, p = self._level(j, hier, h, float(high[j] - low[j]))
                codes.append(c)
                radix.append(int(c.max()) + 1)
                penalty.append(p)
            self.codes.append(codes)
            self.radix.append(radix)
            self.penalty.append(penalty)

    def _level(
        self, j: int, hier: TreeHierarchy | IntervalHierarchy, h: int, width: float
    ) -> tuple[np.ndarray, np.ndarray]:
        column = self.enc.x[:, j]
        if h == hier.height:
            return np.zeros(len(column), dtype=np.int64), np.ones(1)
        if isinstance(hier, IntervalHierarchy):
            if h == 0:
                uniq, codes = np.unique(column, return_inverse=True)
                return codes.astype(np.int64), np.zeros(len(uniq))
            lows, highs = hier.bounds(column, h)
            uniq, codes = np.unique(lows, return_inverse=True)
            spread = (float(highs[0] - lows[0]) / width) if width > 0 else 0.0
            return codes.astype(np.int64), np.full(len(uniq), min(spread, 1.0))
        labels = sorted({hier.level(leaf, h) for leaf in hier.leaves})
        position = {label: i for i, label in enumerate(labels)}
        lookup = np.array([position[hier.level(leaf, h)] for leaf in hier.leaves], dtype=np.int64)
        return lookup[column.astype(np.int64)], _tree_penalty(hier, labels)

    def label(self, j: int, h: int, row: int) -> str:
        """The released value of ``row``'s column ``j`` at level ``h``."""
        hier = self.enc.hierarchies[j]
        value = float(self.enc.x[row, j])
        if h == hier.height:
            return ROOT
        if isinstance(hier, IntervalHierarchy):
            dates = self.enc.is_date(j)
            if h == 0:
                return span_label(value, value, dates)
            lows, highs = hier.bounds(np.array([value]), h)
            return span_label(float(lows[0]), float(highs[0]), dates)
        return hier.level(hier.leaves[int(value)], h)
