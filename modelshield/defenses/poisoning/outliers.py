"""Outlier screens: Isolation Forest and the Local Outlier Factor, from scikit-learn.

Poison that must look unlike the clean data to work (a trigger patch, a feature pushed to an
extreme) stands out to a density or isolation test before any model is trained. Both screens
learn from a uniform reservoir sample of the stream (:mod:`._sketch`), so memory is bounded by
``capacity`` rows; while the data fit the reservoir, streaming and in-memory answers are the
same. scikit-learn is used as is: its implementations are the reference ones.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from modelshield.core.errors import InputError
from modelshield.defenses.poisoning._data import as_matrix
from modelshield.defenses.poisoning._sketch import Reservoir
from modelshield.defenses.poisoning.base import PoisonDetector


def _contamination(value: float) -> float:
    if not 0 < value <= 0.5:
        raise InputError(f"contamination is the expected poison fraction, in (0, 0.5]; got {value}")
    return float(value)


class _ReservoirScreen(PoisonDetector):
    """A scikit-learn outlier detector fitted once on a reservoir sample of the stream."""

    def __init__(self, contamination: float, capacity: int, seed: int) -> None:
        super().__init__()
        self.contamination = _contamination(contamination)
        self.capacity = capacity
        self.seed = seed
        self._reservoir = Reservoir(capacity, seed)
        self.estimator_: Any = None
        self.n_features_: int | None = None

    def _start(self) -> None:
        self._reservoir = Reservoir(self.capacity, self.seed)
        self.n_features_ = None

    def _update(self, pass_index: int, x: Any, y: Any) -> None:
        rows = as_matrix(x, self.name)
        self._reservoir.add(rows)
        self.n_features_ = rows.shape[1]

    def _rows(self, x: Any) -> np.ndarray:
        rows = as_matrix(x, self.name)
        if rows.shape[1] != self.n_features_:
            raise InputError(
                f"{self.name}: inputs have {rows.shape[1]} features, the screen was fitted on {self.n_features_}"
            )
        return rows


class IsolationForestScreen(_ReservoirScreen):
    """Isolation Forest (Liu, Ting, Zhou, ICDM 2008, https://doi.org/10.1109/ICDM.2008.17); one pass.

    Rows that random axis-aligned splits isolate in few steps are flagged; the ``contamination``
    fraction of the fitted sample is flagged (scikit-learn's ``offset_``). Each tree draws at most
    256 rows whatever the data size, so a 100,000-row reservoir loses nothing the forest would use.

    Args:
        contamination: expected poison fraction, in (0, 0.5] (default 0.1).
        n_estimators: trees (default 200).
        capacity: reservoir rows kept from a stream (default 100,000).
        seed: seed of the reservoir and the forest.
    """

    name = "isolation-forest"

    def __init__(
        self, contamination: float = 0.1, *, n_estimators: int = 200, capacity: int = 100_000, seed: int = 0
    ) -> None:
        super().__init__(contamination, capacity, seed)
        self.n_estimators = n_estimators

    def _finish(self, pass_index: int) -> None:
        from sklearn.ensemble import IsolationForest

        self.estimator_ = IsolationForest(
            n_estimators=self.n_estimators, contamination=self.contamination, random_state=self.seed
        ).fit(self._reservoir.sample)
        self.threshold_ = -float(self.estimator_.offset_)

    def _score(self, x: Any, y: Any) -> np.ndarray:
        return -np.asarray(self.estimator_.score_samples(self._rows(x)))


class LocalOutlierFactorScreen(_ReservoirScreen):
    """Local Outlier Factor (Breunig et al., SIGMOD 2000, https://doi.org/10.1145/342009.335388); one pass.

    A row whose local density is much lower than its ``n_neighbors`` neighbours' is flagged; the
    threshold flags the ``contamination`` fraction of the fitted sample by their in-sample LOF.
    New rows are scored against the fitted sample (scikit-learn's ``novelty=True``); a row that
    is itself in the sample counts itself as a neighbour there, which lowers its score slightly, so
    ``fit_predict`` uses the in-sample factors and ``fit(x).predict(x)`` may differ at the margin.

    Args:
        contamination: expected poison fraction, in (0, 0.5] (default 0.1).
        n_neighbors: neighbours (default 20).
        capacity: reservoir rows kept from a stream (default 20,000: LOF is O(n²) to fit).
        seed: seed of the reservoir.
    """

    name = "lof"

    def __init__(
        self, contamination: float = 0.1, *, n_neighbors: int = 20, capacity: int = 20_000, seed: int = 0
    ) -> None:
        super().__init__(contamination, capacity, seed)
        self.n_neighbors = n_neighbors

    def _finish(self, pass_index: int) -> None:
        from sklearn.neighbors import LocalOutlierFactor

        sample = self._reservoir.sample
        if sample.shape[0] <= self.n_neighbors:
            raise InputError(f"lof needs more than n_neighbors={self.n_neighbors} rows, got {sample.shape[0]}")
        self.estimator_ = LocalOutlierFactor(
            n_neighbors=self.n_neighbors, contamination=self.contamination, novelty=True
        ).fit(sample)
        self.in_sample_scores_ = -np.asarray(self.estimator_.negative_outlier_factor_)
        self.threshold_ = -float(self.estimator_.offset_)

    def _score(self, x: Any, y: Any) -> np.ndarray:
        return -np.asarray(self.estimator_.score_samples(self._rows(x)))

    def fit_predict(self, x: Any, y: Any = None) -> np.ndarray:
        """The in-sample LOF verdict on ``x`` (exact while ``x`` fits the reservoir)."""
        self.fit(x, y)
        if self._reservoir.seen > self.capacity:
            return self.predict(x, y)
        return self.in_sample_scores_ > self.threshold_


__all__ = ["IsolationForestScreen", "LocalOutlierFactorScreen"]
