"""Robust statistics: median/MAD screening and iterative trimmed-loss training.

Both resist a poison fraction by construction: a median and a MAD move little however far out the
poison lies (breakdown point 50 %), and a model fitted only on its lowest-loss records never fits
the records it cannot explain.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from modelshield.core.errors import InputError
from modelshield.defenses.poisoning._data import as_labels, as_matrix
from modelshield.defenses.poisoning._sketch import Reservoir
from modelshield.defenses.poisoning.base import PoisonDetector

_MAD_Z = 0.6745  # Φ⁻¹(0.75): makes the MAD of a normal sample estimate its standard deviation
_MEANAD_Z = 0.7979  # √(2/π): the same for the mean absolute deviation, used where the MAD is 0


class MADScreen(PoisonDetector):
    """Median/MAD screening: the modified z-score of Iglewicz & Hoaglin (1993), per feature; one pass.

    A row's score is its largest modified z-score over features, ``0.6745·|x − median| / MAD``.
    A feature whose MAD is 0 is scaled by its mean absolute deviation instead, and one that never
    varied by ``min_scale``, so a value the reference never showed scores very high. With labels and
    ``per_class=True`` each class has its own medians (poison relabelled into a class stands out
    from that class).

    The cut is either fixed, ``threshold`` (3.5 by default, the authors' rule for one normal
    feature), or calibrated, ``fpr``: the share of *records* like the fitting data that may be
    flagged. The calibrated cut is the split-conformal ``(1 − fpr)`` quantile of the fitting rows'
    own scores (Lei et al., "Distribution-Free Predictive Inference for Regression", JASA 2018,
    https://arxiv.org/abs/1604.04173), pooled over classes, so it holds whatever the number of
    features and however heavy their tails, where a Gaussian cut per feature does not (30 features
    of breast-cancer at 3.5 flag about 30 % of clean rows). It assumes the fitting data are clean:
    poison among them above ``fpr`` raises the cut into the poison, so calibrate on a trusted
    reference and keep a fixed ``threshold`` to screen a suspect set against itself.

    Streaming: medians, MADs and the calibration scores are read from a uniform reservoir sample of
    ``capacity`` rows (per class with ``per_class``, each class's scores weighted by the rows it
    stands for), exact while the stream fits it and otherwise within about ``1/sqrt(capacity)`` in
    rank (see :mod:`._sketch`).

    Args:
        threshold: modified z-score above which a row is flagged (default 3.5 unless ``fpr`` is given).
        fpr: calibrate the cut so that this share of rows like the fitting data is flagged, in (0, 0.5).
        per_class: screen each class against its own statistics (needs labels; default False).
        capacity: reservoir rows kept (per class) from a stream (default 100,000).
        min_scale: the scale of a feature that never varied (default 1e-6).
        seed: seed of the reservoir.
    """

    name = "mad"

    def __init__(
        self,
        threshold: float | None = None,
        *,
        fpr: float | None = None,
        per_class: bool = False,
        capacity: int = 100_000,
        min_scale: float = 1e-6,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if threshold is not None and fpr is not None:
            raise InputError("mad: give a fixed threshold or an fpr to calibrate one, not both")
        if fpr is not None and not 0 < fpr < 0.5:
            raise InputError(f"mad: fpr is the share of clean records flagged, in (0, 0.5); got {fpr}")
        threshold = 3.5 if threshold is None else threshold
        if threshold <= 0 or min_scale <= 0:
            raise InputError(f"threshold and min_scale must be positive, got {threshold} and {min_scale}")
        self.threshold_ = float(threshold)
        self.fpr = fpr
        self.per_class = per_class
        self.needs_labels = per_class
        self.capacity = capacity
        self.min_scale = min_scale
        self.seed = seed
        self._reservoirs: dict[int, Reservoir] = {}
        self.median_: dict[int, np.ndarray] = {}
        self.scale_: dict[int, np.ndarray] = {}

    def _groups(self, x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
        rows = as_matrix(x, self.name)
        keys = as_labels(y, rows.shape[0], self.name) if self.per_class else np.zeros(rows.shape[0], np.int64)
        return rows, keys

    def _start(self) -> None:
        self._reservoirs = {}

    def _update(self, pass_index: int, x: Any, y: Any) -> None:
        rows, keys = self._groups(x, y)
        for k in np.unique(keys):
            self._reservoirs.setdefault(int(k), Reservoir(self.capacity, self.seed + int(k))).add(rows[keys == k])

    def _finish(self, pass_index: int) -> None:
        self.median_, self.scale_ = {}, {}
        for k, res in self._reservoirs.items():
            sample = res.sample
            med = np.median(sample, axis=0)
            dev = np.abs(sample - med)
            mad = np.median(dev, axis=0) / _MAD_Z
            mean_ad = dev.mean(axis=0) / _MEANAD_Z
            self.median_[k] = med
            self.scale_[k] = np.maximum(np.where(mad > 0, mad, mean_ad), self.min_scale)
        if self.fpr is not None:
            scored = [(self._zmax(res.sample, k), res.seen / len(res.sample)) for k, res in self._reservoirs.items()]
            self.threshold_ = _conformal_quantile(scored, self.fpr)

    def _zmax(self, rows: np.ndarray, k: int) -> np.ndarray:
        return (np.abs(rows - self.median_[k]) / self.scale_[k]).max(axis=1)

    def _score(self, x: Any, y: Any) -> np.ndarray:
        rows, keys = self._groups(x, y)
        out = np.empty(rows.shape[0])
        for k in np.unique(keys):
            if int(k) not in self.median_:
                raise InputError(f"mad: class {int(k)} was not in the data the screen was fitted on")
            if rows.shape[1] != self.median_[int(k)].size:
                raise InputError(
                    f"mad: inputs have {rows.shape[1]} features, the screen was fitted on {self.median_[int(k)].size}"
                )
            sel = keys == k
            out[sel] = self._zmax(rows[sel], int(k))
        return out


def _conformal_quantile(scored: list[tuple[np.ndarray, float]], fpr: float) -> float:
    """The smallest score with at least ``(1 − fpr)·(n + 1)`` of the ``n`` rows at or below it.

    ``scored`` holds each group's scores with the rows each stands for (1 unless a reservoir
    subsampled the group). With unit weights this is the ``⌈(1 − fpr)(n + 1)⌉``-th smallest score,
    which a new exchangeable row exceeds with probability at most ``fpr``; with fewer than
    ``1/fpr − 1`` rows no score is high enough, and the largest is used.
    """
    scores = np.concatenate([s for s, _ in scored])
    weights = np.concatenate([np.full(s.size, w) for s, w in scored])
    order = np.argsort(scores, kind="stable")
    cum = np.cumsum(weights[order])
    need = (1 - fpr) * (cum[-1] + 1) * (1 - 1e-12)  # the tolerance keeps an exact integer from rounding up
    return float(scores[order[min(int(np.searchsorted(cum, need)), scores.size - 1)]])


def _log_loss(estimator: Any, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per-row negative log-likelihood of the given label (a label the model never saw costs −log 1e-12)."""
    proba = np.asarray(estimator.predict_proba(x))
    classes = np.asarray(estimator.classes_)
    col = np.clip(np.searchsorted(classes, y), 0, classes.size - 1)
    p = np.where(classes[col] == y, proba[np.arange(y.size), col], 0.0)
    return -np.log(np.clip(p, 1e-12, 1.0))


class TrimmedLoss(PoisonDetector):
    """Iterative trimmed loss minimisation (ITLM).

    Shen & Sanghavi, "Learning with Bad Training Data via Iterative Trimmed Loss Minimization",
    ICML 2019, https://arxiv.org/abs/1810.11874.

    Train on everything; then ``rounds`` times keep the ``1 − trim`` fraction of records with the
    lowest loss under the current model and retrain on them. The flagged records are those whose
    loss under the final model (``model_``) is above the ``1 − trim`` quantile of the training
    losses; ``model_`` is the model trained without them.

    In memory (``fit``) the estimator is refitted from scratch each round (default: a multinomial
    logistic regression). Streamed (``fit_stream``) it must have ``partial_fit`` (default
    ``SGDClassifier(loss="log_loss")``) and ``n_classes`` must be given; each round is ``epochs``
    training passes, keeping a batch's rows below the previous round's loss threshold, plus one
    pass that reads this round's losses into a reservoir for its threshold:
    ``(rounds + 1) · (epochs + 1)`` passes in all.

    Args:
        trim: fraction of records trimmed each round, about the poison fraction (default 0.1).
        rounds: retraining rounds after the first fit (default 4).
        estimator: a scikit-learn classifier with ``predict_proba`` (cloned; default as above).
        n_classes: number of classes (needed to stream).
        epochs: training passes per round when streaming (default 5).
        capacity: reservoir size for the streamed loss quantile (default 100,000).
        seed: seed of the default estimators and the reservoir.
    """

    name = "trimmed-loss"
    needs_labels = True

    def __init__(
        self,
        trim: float = 0.1,
        *,
        rounds: int = 4,
        estimator: Any = None,
        n_classes: int | None = None,
        epochs: int = 5,
        capacity: int = 100_000,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if not 0 < trim < 0.5:
            raise InputError(f"trim is the fraction of records dropped each round, in (0, 0.5); got {trim}")
        if rounds < 1 or epochs < 1:
            raise InputError(f"rounds and epochs must be at least 1, got {rounds} and {epochs}")
        self.trim, self.rounds, self.epochs = float(trim), rounds, epochs
        self.estimator, self.n_classes, self.capacity, self.seed = estimator, n_classes, capacity, seed
        self.passes = (rounds + 1) * (epochs + 1)
        self.model_: Any = None
        self._prev: Any = None
        self._prev_threshold = np.inf
        self._losses = Reservoir(capacity, seed)

    # -- in memory -----------------------------------------------------------------------------
    def fit(self, x: Any, y: Any = None) -> TrimmedLoss:
        """Trimmed training on a dataset held in memory, refitting from scratch each round."""
        from sklearn.base import clone
        from sklearn.linear_model import LogisticRegression

        self._check_labels(y)
        rows = as_matrix(x, self.name)
        labels = as_labels(y, rows.shape[0], self.name)
        base = self.estimator if self.estimator is not None else LogisticRegression(max_iter=2000)
        keep = np.ones(rows.shape[0], bool)
        for _ in range(self.rounds + 1):
            self.model_ = clone(base).fit(rows[keep], labels[keep])
            loss = _log_loss(self.model_, rows, labels)
            self.threshold_ = float(np.quantile(loss, 1 - self.trim))
            keep = loss <= self.threshold_
        self.fitted_ = True
        return self

    # -- streamed ------------------------------------------------------------------------------
    def _start(self) -> None:
        from sklearn.base import clone
        from sklearn.linear_model import SGDClassifier

        if self.n_classes is None or self.n_classes < 2:
            raise InputError("trimmed-loss: streaming needs n_classes (the number of classes, at least 2)")
        base = self.estimator if self.estimator is not None else SGDClassifier(loss="log_loss", random_state=self.seed)
        if not hasattr(base, "partial_fit"):
            raise InputError(
                f"trimmed-loss: streaming needs an estimator with partial_fit, {type(base).__name__} has none"
            )
        self._base = base
        self._prev, self._prev_threshold = None, np.inf
        self.model_ = clone(base)

    def _update(self, pass_index: int, x: Any, y: Any) -> None:
        rows = as_matrix(x, self.name)
        labels = as_labels(y, rows.shape[0], self.name)
        if pass_index % (self.epochs + 1) == self.epochs:  # the round's scoring pass
            self._losses.add(_log_loss(self.model_, rows, labels))
            return
        if self._prev is not None:
            keep = _log_loss(self._prev, rows, labels) <= self._prev_threshold
            rows, labels = rows[keep], labels[keep]
        if rows.shape[0]:
            self.model_.partial_fit(rows, labels, classes=np.arange(self.n_classes or 0))

    def _finish(self, pass_index: int) -> None:
        from sklearn.base import clone

        if pass_index % (self.epochs + 1) == self.epochs - 1 and not hasattr(self.model_, "classes_"):
            raise InputError("trimmed-loss: no rows were left to train on")
        if pass_index % (self.epochs + 1) != self.epochs:
            return
        self.threshold_ = float(np.quantile(self._losses.sample, 1 - self.trim))
        self._losses = Reservoir(self.capacity, self.seed)
        if pass_index < self.passes - 1:
            self._prev, self._prev_threshold = self.model_, self.threshold_
            self.model_ = clone(self._base)

    def _score(self, x: Any, y: Any) -> np.ndarray:
        rows = as_matrix(x, self.name)
        return _log_loss(self.model_, rows, as_labels(y, rows.shape[0], self.name))


__all__ = ["MADScreen", "TrimmedLoss"]
