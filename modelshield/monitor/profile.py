"""Running summaries of one table stream: moments, ranges, category counts and bin counts, in bounded memory.

Shared by the reference sketch (which also chooses the bins) and by the current data a drift check reads, so
both sides of every test are summarised by the same code.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from modelshield.core.errors import InputError
from modelshield.monitor.tables import Chunk

#: a categorical column keeps at most this many distinct values × 4 while streaming; rarer ones become "other"
PRUNE_FACTOR = 4


@dataclass
class Moments:
    """Count, mean, sum of squared deviations, min and max of the non-missing values, merged chunk by chunk
    (Chan, Golub & LeVeque 1979), so no chunk size loses precision; ``missing`` counts NaN."""

    count: int = 0
    mean: float = 0.0
    m2: float = 0.0
    lo: float = np.inf
    hi: float = -np.inf
    missing: int = 0

    def add(self, values: np.ndarray) -> np.ndarray:
        """Fold in one chunk; returns its non-missing values."""
        present = values[~np.isnan(values)]
        n = len(present)
        if n == 0:
            self.missing += len(values)
            return present
        mean = float(present.mean())
        m2 = float(np.square(present - mean).sum())
        self.merge(Moments(n, mean, m2, float(present.min()), float(present.max()), len(values) - n))
        return present

    def merge(self, other: Moments) -> None:
        """Fold in the moments of other, disjoint values (a chunk, or what another process summarised)."""
        self.missing += other.missing
        if other.count == 0:
            return
        total = self.count + other.count
        delta = other.mean - self.mean
        self.mean += delta * other.count / total
        self.m2 += other.m2 + delta * delta * self.count * other.count / total
        self.count = total
        self.lo = min(self.lo, other.lo)
        self.hi = max(self.hi, other.hi)

    @property
    def std(self) -> float:
        return float(np.sqrt(self.m2 / self.count)) if self.count else 0.0


@dataclass
class CategoryCounts:
    """Value counts of one categorical column, pruned to the most frequent ``cap × PRUNE_FACTOR`` while
    streaming so an identifier column cannot exhaust memory; what was pruned is counted in ``other``."""

    cap: int
    counts: dict[str, int] = field(default_factory=dict)
    other: int = 0
    missing: int = 0

    def add(self, values: dict[str, int], missing: int) -> None:
        self.missing += missing
        for k, v in values.items():
            self.counts[k] = self.counts.get(k, 0) + v
        if len(self.counts) > self.cap * PRUNE_FACTOR:
            self._prune(self.cap * PRUNE_FACTOR)

    def _prune(self, keep: int) -> None:
        ranked = sorted(self.counts.items(), key=lambda kv: (-kv[1], kv[0]))
        self.other += sum(v for _, v in ranked[keep:])
        self.counts = dict(ranked[:keep])

    def finish(self) -> None:
        """Keep the ``cap`` most frequent values."""
        self._prune(self.cap)


def bin_counts(edges: np.ndarray, present: np.ndarray) -> np.ndarray:
    """Counts of values in the bins (−∞, e_0], (e_0, e_1], ..., (e_last, ∞).

    The values are sorted and the edges looked up in them: a sort and len(edges) binary searches cost several
    times less than one binary search per value over the edges, whose random accesses miss the branch predictor."""
    below = np.searchsorted(np.sort(present), edges, side="right")
    return np.diff(below, prepend=0, append=len(present))


#: rows × features folded per block by ``fold_numeric``: 512 KiB of float64, whose temporaries stay in the
#: allocator's reused memory (blocks of 16 MiB ran twice as slow as the per-column loop, faulting in fresh pages)
BLOCK_ELEMENTS = 1 << 16


def fold_numeric(
    moments: list[Moments], bins: list[np.ndarray], edges: list[np.ndarray], columns: list[np.ndarray]
) -> None:
    """Add equal-length numeric columns to their moments and to their bins' counts, a block of columns per numpy
    call: a Python loop of a dozen numpy calls per column cost more than the numbers on a live window of 1,000 rows.
    Columns of a block's length or more (a file's chunks) are folded one by one, where those calls cost nothing.

    The counts are exactly ``bin_counts``'s; without missing values the moments are bit for bit ``Moments.add``'s
    (the same pairwise sums over each column), with them equal to rounding."""
    if not columns:
        return
    if len(columns[0]) >= BLOCK_ELEMENTS:
        for m, b, e, c in zip(moments, bins, edges, columns, strict=True):
            b += bin_counts(e, m.add(c))
        return
    step = BLOCK_ELEMENTS // max(1, len(columns[0]))
    for start in range(0, len(columns), step):
        part = slice(start, start + step)
        _fold_block(moments[part], bins[part], edges[part], np.array(columns[part], dtype=np.float64))


def _fold_block(moments: list[Moments], bins: list[np.ndarray], edges: list[np.ndarray], x: np.ndarray) -> None:
    """``fold_numeric`` on a (features, rows) block: moments by reductions along rows, one sort of every row (NaN
    sorts last), then one binary search of each feature's edges in its sorted present values."""
    nan = np.isnan(x)
    missing = nan.sum(axis=1)
    count = x.shape[1] - missing
    gaps = bool(missing.any())  # masks cost three passes over the block; most blocks have nothing to mask
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = (np.where(nan, 0.0, x) if gaps else x).sum(axis=1) / count
        dev = x - mean[:, None]
        if gaps:
            dev[nan] = 0.0
        m2 = np.square(dev, out=dev).sum(axis=1)
    lo = (np.where(nan, np.inf, x) if gaps else x).min(axis=1)
    hi = (np.where(nan, -np.inf, x) if gaps else x).max(axis=1)
    ordered = np.sort(x, axis=1)
    below = [
        np.searchsorted(ordered[j, :n], e, side="right") for j, (n, e) in enumerate(zip(count, edges, strict=True))
    ]
    lengths = np.array([len(e) for e in edges], dtype=np.int64)
    ends = np.cumsum(lengths)
    upper = np.insert(np.concatenate(below), ends, count)  # per feature: values ≤ each edge, then all its values
    lower = np.concatenate([[0], upper[:-1]])
    lower[ends - lengths + np.arange(len(edges))] = 0
    counts = np.split(upper - lower, (ends + np.arange(1, len(edges) + 1))[:-1])
    for j, (m, b) in enumerate(zip(moments, bins, strict=True)):
        m.merge(Moments(int(count[j]), float(mean[j]), float(m2[j]), float(lo[j]), float(hi[j]), int(missing[j])))
        b += counts[j]


def column_kinds(chunk: Chunk) -> dict[str, str]:
    """Column name → "numeric" or "categorical", in the chunk's column order."""
    return {c: "numeric" if c in chunk.numeric else "categorical" for c in chunk.columns}


def check_kinds(expected: dict[str, str], chunk: Chunk, where: str) -> None:
    """Refuse a chunk whose columns are missing or changed kind against ``expected``."""
    got = column_kinds(chunk)
    missing = [c for c in expected if c not in got]
    if missing:
        shown = ", ".join(missing[:10]) + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
        raise InputError(f"{where} lacks columns the reference has: {shown}")
    changed = [c for c, kind in expected.items() if got[c] != kind]
    if changed:
        c = changed[0]
        raise InputError(
            f"{where}: column {c!r} is {got[c]} here but {expected[c]} in the reference",
            hint="pass --categorical for columns of codes, and keep numeric columns free of text",
        )


__all__ = ["BLOCK_ELEMENTS", "CategoryCounts", "Moments", "bin_counts", "check_kinds", "column_kinds", "fold_numeric"]
