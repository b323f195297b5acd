"""The contract every poisoning defence keeps, scikit-learn style, in memory or over a stream.

A *detector* looks at training records (or, for STRIP, at inputs arriving at run time) and says
which look poisoned:

* ``fit(x, y)`` learns from a dataset held in memory and returns ``self``;
* ``fit_stream(batches)`` learns from a stream: ``batches`` is a zero-argument callable that
  returns a fresh iterable of ``(x, y)`` batches each time it is called, because some algorithms
  need a second pass (``passes`` says how many each makes). State kept between batches is a
  summary (moments, a reservoir sample, a sketch), never the whole dataset;
* ``partial_fit(x, y)`` feeds one batch to a one-pass detector (``passes == 1``);
* ``score_samples(x, y)`` gives one *suspicion* score per row, higher meaning more suspicious
  (the opposite sign to scikit-learn's outlier detectors, whose ``score_samples`` is normality);
* ``predict(x, y)`` is the boolean mask ``score_samples(x, y) > threshold_``;
* ``predict_stream(batches)`` yields one mask per batch.

``evaluate_detection(flagged, poisoned)`` scores a mask against a known poison mask, the
measure every benchmark and ``modelshield assess --poisoning`` report.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import numpy as np

from modelshield.core.errors import InputError

Batch = tuple[Any, Any]
"""One batch: inputs (array, tensor or DataFrame, by detector) and labels (or None)."""
BatchFactory = Callable[[], Iterable[Batch]]
"""Returns a fresh iterable over the same batches each call (a two-pass detector calls it twice)."""


class PoisonDetector(ABC):
    """Flags suspicious training records; learns in memory or from a stream of batches.

    Subclasses implement ``_start`` (reset state), ``_update(pass_index, x, y)`` (one batch of one
    pass), ``_finish(pass_index)`` (end of a pass) and ``_score(x, y)``; ``passes`` says how many
    passes over the data ``fit_stream`` makes.
    """

    name: ClassVar[str]
    #: passes over the data fit_stream makes (1: partial_fit works)
    passes: int = 1
    #: needs labels to fit and score (per-class detectors, confident learning)
    needs_labels: bool = False

    def __init__(self) -> None:
        self.threshold_: float = 0.0
        self.fitted_ = False
        self._open = False

    # -- fitting -------------------------------------------------------------------------------
    def fit(self, x: Any, y: Any = None) -> PoisonDetector:
        """Learn from a dataset held in memory (one batch of a stream)."""
        return self.fit_stream(lambda: [(x, y)])

    def fit_stream(self, batches: BatchFactory) -> PoisonDetector:
        """Learn from a stream, making ``passes`` passes over ``batches()``."""
        if not callable(batches):
            raise InputError(
                f"{self.name}: fit_stream takes a callable returning a fresh iterable of (x, y) batches, "
                f"got {type(batches).__name__}"
            )
        self._start()
        for p in range(self.passes):
            seen = 0
            for xb, yb in batches():
                self._check_labels(yb)
                self._update(p, xb, yb)
                seen += 1
            if not seen:
                raise InputError(f"{self.name}: the batch stream is empty (pass {p + 1} of {self.passes})")
            self._finish(p)
        self._open = False
        self.fitted_ = True
        return self

    def partial_fit(self, x: Any, y: Any = None) -> PoisonDetector:
        """Add one batch to a one-pass detector's summary; scoring finalises it."""
        if self.passes != 1:
            raise InputError(
                f"{self.name} makes {self.passes} passes over the data: use fit_stream(batches) with a callable "
                "that returns a fresh iterable of batches"
            )
        if not self._open:
            self._start()
            self._open = True
        self._check_labels(y)
        self._update(0, x, y)
        self.fitted_ = False
        return self

    # -- scoring -------------------------------------------------------------------------------
    def score_samples(self, x: Any, y: Any = None) -> np.ndarray:
        """Suspicion score per row (float64, higher is more suspicious)."""
        self._ready()
        self._check_labels(y)
        return np.asarray(self._score(x, y), dtype=np.float64)

    def predict(self, x: Any, y: Any = None) -> np.ndarray:
        """Boolean mask of the rows flagged as suspicious."""
        return self.score_samples(x, y) > self.threshold_

    def fit_predict(self, x: Any, y: Any = None) -> np.ndarray:
        """``fit(x, y).predict(x, y)``: the suspicious rows of a dataset held in memory."""
        return self.fit(x, y).predict(x, y)

    def predict_stream(self, batches: Iterable[Batch]) -> Iterator[np.ndarray]:
        """One boolean mask per batch, in order."""
        for xb, yb in batches:
            yield self.predict(xb, yb)

    # -- for subclasses ------------------------------------------------------------------------
    @abstractmethod
    def _start(self) -> None:
        """Reset the learned state before the first batch."""

    @abstractmethod
    def _update(self, pass_index: int, x: Any, y: Any) -> None:
        """Fold one batch of pass ``pass_index`` into the state."""

    def _finish(self, pass_index: int) -> None:  # noqa: B027 - many detectors have nothing to close
        """Close pass ``pass_index`` (derive statistics, thresholds)."""

    @abstractmethod
    def _score(self, x: Any, y: Any) -> np.ndarray:
        """Suspicion scores of one batch."""

    def _ready(self) -> None:
        if self._open:  # partial_fit batches not yet closed
            self._finish(0)
            self._open = False
            self.fitted_ = True
        if not self.fitted_:
            raise InputError(f"the {self.name} detector is not fitted: call fit(x, y) or fit_stream(batches) first")

    def _check_labels(self, y: Any) -> None:
        if self.needs_labels and y is None:
            raise InputError(f"the {self.name} detector needs labels: pass y with x")


@dataclass(frozen=True)
class DetectionReport:
    """A flagged mask scored against the known poison mask (zero division gives 0, as scikit-learn)."""

    detector: str
    n: int
    flagged: int
    poisoned: int
    true_positives: int

    @property
    def precision(self) -> float:
        """Share of flagged rows that are poison."""
        return self.true_positives / self.flagged if self.flagged else 0.0

    @property
    def recall(self) -> float:
        """Share of poison rows flagged."""
        return self.true_positives / self.poisoned if self.poisoned else 0.0

    @property
    def f1(self) -> float:
        """Harmonic mean of precision and recall."""
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    @property
    def false_positive_rate(self) -> float:
        """Share of clean rows flagged (what the defence throws away for nothing)."""
        clean = self.n - self.poisoned
        return (self.flagged - self.true_positives) / clean if clean else 0.0

    def as_dict(self) -> dict[str, Any]:
        """Counts and rates, JSON-ready."""
        return {
            **asdict(self),
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
            "false_positive_rate": self.false_positive_rate,
        }


def _mask(name: str, mask: Any) -> np.ndarray:
    arr = np.asarray(mask.detach().cpu() if hasattr(mask, "detach") else mask)
    if arr.ndim != 1:
        raise InputError(f"{name} must be a 1-D mask, got shape {arr.shape}")
    if arr.dtype != np.bool_:
        if arr.size and not np.isin(arr, (0, 1)).all():
            raise InputError(f"{name} must be boolean (or 0/1), got values outside 0/1")
        arr = arr.astype(bool)
    return arr


def evaluate_detection(flagged: Any, poisoned: Any, detector: str = "") -> DetectionReport:
    """Precision, recall and F1 of a flagged mask against the known poison mask."""
    f, p = _mask("the flagged mask", flagged), _mask("the poison mask", poisoned)
    if f.shape != p.shape:
        raise InputError(f"the flagged mask has {f.size} rows, the poison mask {p.size}")
    return DetectionReport(detector, int(f.size), int(f.sum()), int(p.sum()), int((f & p).sum()))


__all__ = ["Batch", "BatchFactory", "DetectionReport", "PoisonDetector", "evaluate_detection"]
