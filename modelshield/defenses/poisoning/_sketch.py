"""Bounded summaries of a stream: a uniform reservoir sample (Vitter's Algorithm R).

A reservoir of ``capacity`` rows is an exact copy of the data while the stream is no longer than
``capacity``, and a uniform sample of it afterwards, so a quantile read from it has rank error
about ``1/sqrt(capacity)`` (±0.3 percentile points at the default 100,000) whatever the stream's
length. Medians, MADs, score thresholds and the training sample of Isolation Forest and LOF are
read from one. The buffer grows with the stream up to ``capacity`` rows, so a small dataset costs
what it holds.
"""

from __future__ import annotations

import numpy as np

from modelshield.core.errors import InputError


class Reservoir:
    """A uniform sample of at most ``capacity`` rows of a stream, seeded."""

    def __init__(self, capacity: int, seed: int = 0) -> None:
        if capacity < 1:
            raise InputError(f"the reservoir capacity must be at least 1, got {capacity}")
        self.capacity = int(capacity)
        self.seen = 0
        self._rng = np.random.default_rng(seed)
        self._rows: np.ndarray | None = None
        self._filled = 0

    def add(self, rows: np.ndarray) -> None:
        """Offer a batch of rows (first axis) to the sample."""
        if rows.shape[0] == 0:
            return
        if self._rows is None:
            self._rows = np.empty((min(self.capacity, max(rows.shape[0], 1024)), *rows.shape[1:]), dtype=rows.dtype)
        elif rows.shape[1:] != self._rows.shape[1:]:
            raise InputError(f"a batch has rows of shape {rows.shape[1:]}, earlier batches {self._rows.shape[1:]}")
        take = min(self.capacity - self._filled, rows.shape[0])
        if self._filled + take > self._rows.shape[0]:  # grow by doubling, never past the capacity
            grown = np.empty(
                (min(self.capacity, max(2 * self._rows.shape[0], self._filled + take)), *rows.shape[1:]),
                self._rows.dtype,
            )
            grown[: self._filled] = self._rows[: self._filled]
            self._rows = grown
        self._rows[self._filled : self._filled + take] = rows[:take]
        self._filled += take
        rest = rows[take:]
        first = self.seen + take
        self.seen += rows.shape[0]
        if rest.shape[0]:
            # row t of the stream (0-based) replaces a random slot with probability capacity / (t + 1)
            slots = self._rng.integers(0, np.arange(first, first + rest.shape[0]) + 1)
            for i in np.flatnonzero(slots < self.capacity):
                self._rows[slots[i]] = rest[i]

    @property
    def sample(self) -> np.ndarray:
        """The rows kept (all of them while the stream fits the capacity)."""
        if self._rows is None:
            raise InputError("the reservoir is empty: no rows were seen")
        return self._rows[: self._filled]
