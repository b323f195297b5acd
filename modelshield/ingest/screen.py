"""The poisoning detectors at the door: fitted once on the trusted reference, then scoring every chunk.

Detectors are those of :mod:`modelshield.defenses.poisoning`, used through their contract
(``fit``/``score_samples``/``threshold_``). They are fitted on the reference set, which the user vouches for,
not on the incoming table, which is the thing under suspicion: a record is flagged when it does not look
like the trusted data (or, for label detectors, when its label disagrees with what the trusted data
predicts for it). Each chunk is scored on its own, so memory follows the chunk.

Tables reach the detectors as one numeric matrix: numeric columns as they are (an empty cell filled with
the reference median), categorical columns one-hot over the reference's categories. Text columns are left
to the schema rules.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from modelshield.core.errors import InputError
from modelshield.defenses.poisoning import PoisonDetector
from modelshield.defenses.poisoning.schema import Schema

if TYPE_CHECKING:
    import pandas as pd


def _codes(column: pd.Series, categories: tuple[str, ...]) -> np.ndarray:
    """Each value's index in ``categories`` (compared as text), -1 for an empty cell or an unknown value."""
    import pandas as pd

    text = column.astype(str).where(column.notna(), None) if pd.api.types.is_numeric_dtype(column) else column
    return np.asarray(pd.Categorical(text, categories=list(categories)).codes, dtype=np.int64)


class Encoder:
    """Turns a coerced chunk into the detectors' matrix, the same way for the reference and every chunk."""

    def __init__(self, reference: pd.DataFrame, schema: Schema, label: str | None) -> None:
        features = [c for c in schema.columns if c.name != label]
        self.numeric = [c.name for c in features if c.kind in ("number", "integer", "bool")]
        self.categorical = [
            (c.name, tuple(c.categories or sorted(reference[c.name].dropna().astype(str).unique())))
            for c in features
            if c.kind == "category"
        ]
        medians = reference[self.numeric].astype("float64").median().to_numpy() if self.numeric else np.empty(0)
        self._fill = np.nan_to_num(medians, nan=0.0)
        self.label = label
        self.classes: tuple[str, ...] = ()
        if label is not None:
            self.classes = tuple(sorted(reference[label].dropna().astype(str).unique()))
        if not self.numeric and not self.categorical:
            raise InputError("the schema has no numeric or categorical feature for the poisoning detectors")

    @property
    def features(self) -> list[str]:
        return self.numeric + [f"{name}={v}" for name, cats in self.categorical for v in cats]

    def matrix(self, frame: pd.DataFrame) -> np.ndarray:
        parts = []
        if self.numeric:
            x = frame[self.numeric].astype("float64").to_numpy(copy=True)
            missing = ~np.isfinite(x)
            x[missing] = np.broadcast_to(self._fill, x.shape)[missing]
            parts.append(x)
        for name, cats in self.categorical:
            idx = _codes(frame[name], cats)
            onehot = np.zeros((len(frame), len(cats)), dtype=np.float64)
            rows = np.flatnonzero(idx >= 0)
            onehot[rows, idx[rows]] = 1.0
            parts.append(onehot)
        return np.hstack(parts)

    def labels(self, frame: pd.DataFrame) -> np.ndarray:
        """Class index per record; -1 where the label is empty or not a known class."""
        assert self.label is not None
        return _codes(frame[self.label], self.classes)


@dataclass(frozen=True)
class Flag:
    """One detector's verdict on one record."""

    row: int
    detector: str
    score: float
    threshold: float


#: detectors ingestion can run, by name; "mad" sees the numeric columns only (a one-hot column's MAD is 0)
DETECTORS = ("mad", "isolation-forest", "lof", "trimmed-loss")
DEFAULT_DETECTORS = ("mad", "isolation-forest")
LABEL_DETECTORS = ("trimmed-loss",)


def build(name: str, fpr: float, seed: int = 0) -> PoisonDetector:
    """A detector set to flag about ``fpr`` of records like the reference (its false-positive rate)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from modelshield.defenses.poisoning.outliers import IsolationForestScreen, LocalOutlierFactorScreen
    from modelshield.defenses.poisoning.robust import MADScreen, TrimmedLoss

    if not 0 < fpr < 0.5:
        raise InputError(f"the false-positive rate must be in (0, 0.5), got {fpr}")
    if name == "mad":
        return MADScreen(fpr=fpr, seed=seed)  # cut calibrated on the reference: fpr is a share of records
    if name == "isolation-forest":
        return IsolationForestScreen(fpr, seed=seed)
    if name == "lof":
        return LocalOutlierFactorScreen(fpr, seed=seed)
    if name == "trimmed-loss":
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
        return TrimmedLoss(fpr, estimator=model, seed=seed)
    raise InputError(f"unknown detector {name!r} (known: {', '.join(DETECTORS)})")


class Screen:
    """Fit detectors on the reference; ``flags(chunk)`` gives every record any of them finds suspicious."""

    def __init__(
        self, names: list[str], fpr: float, reference: pd.DataFrame, schema: Schema, label: str | None
    ) -> None:
        self.detectors: list[PoisonDetector] = []
        if not names:
            return
        self.encoder = Encoder(reference, schema, label)
        self.detectors = [build(n, fpr) for n in dict.fromkeys(names)]
        x = self.encoder.matrix(reference)
        y = self.encoder.labels(reference) if label is not None else None
        for d in self.detectors:
            if d.needs_labels and y is None:
                raise InputError(f"the {d.name} detector needs labels: name the label column (--label)")
            if d.name == "mad" and not self.encoder.numeric:
                raise InputError("the mad detector needs numeric columns, and the schema has none")
            rows = np.flatnonzero(y >= 0) if d.needs_labels and y is not None else np.arange(len(x))
            d.fit(self._features(d, x[rows]), y[rows] if d.needs_labels and y is not None else None)

    def _features(self, d: PoisonDetector, x: np.ndarray) -> np.ndarray:
        return x[:, : len(self.encoder.numeric)] if d.name == "mad" else x

    def flags(self, frame: pd.DataFrame) -> list[Flag]:
        if not self.detectors:
            return []
        x = self.encoder.matrix(frame)
        y = self.encoder.labels(frame) if self.encoder.label is not None else None
        found: list[Flag] = []
        for d in self.detectors:
            rows = np.arange(len(frame))
            if d.needs_labels and y is not None:
                rows = np.flatnonzero(y >= 0)  # a record with an unknown label is the schema's to hold
            if not len(rows):
                continue
            scores = d.score_samples(self._features(d, x[rows]), y[rows] if d.needs_labels and y is not None else None)
            threshold = float(d.threshold_)
            found += [
                Flag(int(rows[i]), d.name, float(scores[i]), threshold) for i in np.flatnonzero(scores > threshold)
            ]
        return found

    def describe(self) -> list[dict[str, Any]]:
        """What ran, with the threshold each fitted detector set (for the report)."""
        return [{"name": d.name, "threshold": float(d.threshold_)} for d in self.detectors]
