"""Per-class first and second moments of a stream of vectors, and the principal directions they give.

Summing ``n``, ``Σa`` and ``Σaaᵀ`` per class takes O(classes · d²) memory whatever the stream's
length; the covariance they give has the same eigenvectors as the centred data's right singular
vectors, so the in-memory SVD of the papers and the streamed computation agree (to rounding).
"""

from __future__ import annotations

import numpy as np

from modelshield.core.errors import InputError


class ClassMoments:
    """Running count, sum and sum of outer products of vectors, per class."""

    def __init__(self) -> None:
        self.count: dict[int, int] = {}
        self._sum: dict[int, np.ndarray] = {}
        self._outer: dict[int, np.ndarray] = {}

    def add(self, acts: np.ndarray, labels: np.ndarray) -> None:
        for c in np.unique(labels):
            a = acts[labels == c]
            k = int(c)
            if k not in self.count:
                self.count[k], self._sum[k], self._outer[k] = 0, np.zeros(a.shape[1]), np.zeros((a.shape[1],) * 2)
            self.count[k] += a.shape[0]
            self._sum[k] += a.sum(axis=0)
            self._outer[k] += a.T @ a

    def mean(self, c: int) -> np.ndarray:
        return self._sum[c] / self.count[c]

    def directions(self, c: int, k: int) -> np.ndarray:
        """(d, k) top-``k`` principal directions of class ``c``, largest variance first."""
        mu = self.mean(c)
        cov = self._outer[c] / self.count[c] - np.outer(mu, mu)
        _, vecs = np.linalg.eigh((cov + cov.T) / 2)
        return vecs[:, ::-1][:, :k]


def class_of(labels: np.ndarray, known: dict[int, int], who: str) -> None:
    """Refuse labels of a class the detector never saw when fitted."""
    missing = set(np.unique(labels).tolist()) - set(known)
    if missing:
        raise InputError(f"{who}: class {min(missing)} was not in the data the detector was fitted on")
