"""A fixed-size uniform sample of a stream of rows, the same whatever the chunking.

Each row gets a uniform random key from one seeded generator, drawn in stream order, and the sample is the
``size`` rows with the smallest keys: a uniform sample without replacement (Efraimidis & Spirakis, "Weighted
random sampling with a reservoir", IPL 2006, with equal weights). Keys come from one stream, so splitting the
same rows into different chunks yields the same sample, and the first k rows by key of a sample of size s ≥ k
are themselves a uniform sample of size k.
"""

from __future__ import annotations

import numpy as np


class Reservoir:
    """Keeps the ``size`` rows (numeric vectors of ``width``) with the smallest random keys seen so far."""

    def __init__(self, size: int, width: int, seed: int = 0) -> None:
        self.size = size
        self._rng = np.random.default_rng(seed)
        self._keys = np.empty(0)
        self._rows = np.empty((0, width))

    def add(self, columns: list[np.ndarray]) -> None:
        """Offer one chunk, given as its columns (all the same length)."""
        if not columns:
            return
        keys = self._rng.random(len(columns[0]))
        if len(self._keys) >= self.size:
            take = np.flatnonzero(keys < self._keys.max())  # only rows that can enter are stacked
        else:
            take = np.arange(len(keys))
        if not len(take):
            return
        if len(take) > self.size:
            take = take[np.argpartition(keys[take], self.size - 1)[: self.size]]
        rows = np.column_stack([c[take] for c in columns]) if columns else np.empty((len(take), 0))
        all_keys = np.concatenate([self._keys, keys[take]])
        all_rows = np.vstack([self._rows, rows])
        if len(all_keys) > self.size:
            keep = np.argpartition(all_keys, self.size - 1)[: self.size]
            all_keys, all_rows = all_keys[keep], all_rows[keep]
        self._keys, self._rows = all_keys, all_rows

    def sample(self, k: int | None = None) -> np.ndarray:
        """The rows in key order; the first ``k`` form a uniform sample of size ``k``."""
        order = np.argsort(self._keys, kind="stable")
        rows = self._rows[order]
        return rows if k is None else rows[:k]


__all__ = ["Reservoir"]
