"""Label-noise detection by confident learning, through cleanlab.

Northcutt, Jiang, Chuang, "Confident Learning: Estimating Uncertainty in Dataset Labels", JAIR
2021, https://arxiv.org/abs/1911.00068.

Flipped labels are the cheapest poison: no input is touched, so input-space screens cannot see
them. Confident learning compares each given label with out-of-sample predicted probabilities:
per class it estimates how confident a model is on that class's examples, counts examples
confidently belonging to another class, and flags as many as the estimated noise. cleanlab is the
authors' maintained implementation (Apache-2.0, pure Python, small), used here rather than
rewritten; modelshield supplies the out-of-sample probabilities and the streaming plumbing.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from modelshield.core.errors import DependencyError, InputError
from modelshield.defenses.poisoning._data import as_labels, as_matrix
from modelshield.defenses.poisoning._sketch import Reservoir
from modelshield.defenses.poisoning.base import PoisonDetector

FILTERS = ("prune_by_noise_rate", "prune_by_class", "both", "confident_learning", "predicted_neq_given")


def _cleanlab() -> Any:
    try:
        import cleanlab.filter
        import cleanlab.rank
    except ImportError as e:  # pragma: no cover - cleanlab is a dependency
        raise DependencyError("confident learning needs cleanlab", hint="pip install 'cleanlab>=2.6'") from e
    return cleanlab


def _proba(models: list[Any], x: np.ndarray, n_classes: int) -> np.ndarray:
    """Mean predicted probabilities of ``models`` over all ``n_classes`` columns."""
    out = np.zeros((x.shape[0], n_classes))
    for m in models:
        out[:, np.asarray(m.classes_)] += m.predict_proba(x)
    return out / len(models)


def _quality(labels: np.ndarray, proba: np.ndarray) -> np.ndarray:
    return np.asarray(_cleanlab().rank.get_label_quality_scores(labels, proba))


class ConfidentLearning(PoisonDetector):
    """Flags rows whose label disagrees with out-of-sample predictions (cleanlab's confident learning).

    In memory (``fit``): out-of-sample probabilities from ``cv``-fold cross-validation of
    ``estimator`` (default a multinomial logistic regression), then
    ``cleanlab.filter.find_label_issues(labels, pred_probs, filter_by=...)``; ``label_issues_`` is
    its mask and ``fit_predict`` returns it.

    Streamed (``fit_stream``, ``epochs + 2`` passes): ``cv`` copies of a ``partial_fit`` estimator
    (default ``SGDClassifier(loss="log_loss", alpha=1e-3)``) each learn from every row but those of its fold
    (row ``i`` of the stream is in fold ``i mod cv``) for ``epochs`` passes; the next pass gives
    each row its out-of-fold probabilities and feeds cleanlab's batched ``LabelInspector`` its
    confident thresholds; the last scores label quality, keeping a reservoir of the scores and
    cleanlab's estimate of the issue count, from which the quality threshold is read. Memory is
    the ``cv`` models, the reservoir and each row's quality score (float32, four bytes per row,
    as cleanlab's own batched finder keeps) from which ``label_issues_`` is made.

    ``score_samples(x, y)`` is one minus cleanlab's label quality under the fitted models (for
    rows that were fitted this is in-sample, so it is a ranking aid; the cleanlab verdict on the
    fitted rows is ``label_issues_``); ``predict`` flags quality below ``1 - threshold_``.

    Args:
        estimator: a scikit-learn classifier with ``predict_proba`` (cloned).
        cv: cross-validation folds (default 5).
        filter_by: cleanlab's rule (default ``"prune_by_noise_rate"``).
        n_classes: number of classes (needed to stream; read from the labels in memory).
        epochs: training passes when streaming (default 5).
        capacity: reservoir size of the streamed quality scores (default 100,000).
        seed: seed of the folds and the default estimators.
    """

    name = "confident-learning"
    needs_labels = True

    def __init__(
        self,
        estimator: Any = None,
        *,
        cv: int = 5,
        filter_by: str = "prune_by_noise_rate",
        n_classes: int | None = None,
        epochs: int = 5,
        capacity: int = 100_000,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if cv < 2:
            raise InputError(f"confident learning needs at least 2 cross-validation folds, got cv={cv}")
        if filter_by not in FILTERS:
            raise InputError(f"unknown filter_by {filter_by!r}; choose from {', '.join(FILTERS)}")
        self.estimator, self.cv, self.filter_by, self.n_classes = estimator, cv, filter_by, n_classes
        self.epochs, self.capacity, self.seed = epochs, capacity, seed
        self.passes = epochs + 2
        self.models_: list[Any] = []
        self.label_issues_ = np.zeros(0, bool)

    # -- in memory -----------------------------------------------------------------------------
    def fit(self, x: Any, y: Any = None) -> ConfidentLearning:
        """Cross-validated probabilities and cleanlab's ``find_label_issues`` on data held in memory."""
        from sklearn.base import clone
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import StratifiedKFold

        self._check_labels(y)
        rows = as_matrix(x, self.name)
        labels = as_labels(y, rows.shape[0], self.name)
        k = int(self.n_classes or labels.max() + 1)
        counts = np.bincount(labels, minlength=k)
        if counts.min() < self.cv:
            raise InputError(
                f"confident-learning: class {int(counts.argmin())} has {int(counts.min())} rows, "
                f"fewer than cv={self.cv} folds"
            )
        base = self.estimator if self.estimator is not None else LogisticRegression(max_iter=1000)
        pred_probs = np.zeros((rows.shape[0], k))
        self.models_ = []
        for train, held in StratifiedKFold(self.cv, shuffle=True, random_state=self.seed).split(rows, labels):
            model = clone(base).fit(rows[train], labels[train])
            pred_probs[held] = _proba([model], rows[held], k)
            self.models_.append(model)
        self.n_classes_ = k
        self.label_issues_ = np.asarray(
            _cleanlab().filter.find_label_issues(labels, pred_probs, filter_by=self.filter_by), dtype=bool
        )
        quality = _quality(labels, pred_probs)
        self.threshold_ = 1.0 - self._cut(quality, int(self.label_issues_.sum()))
        self.fitted_ = True
        return self

    def fit_predict(self, x: Any, y: Any = None) -> np.ndarray:
        """cleanlab's label issues among the rows of ``x`` (in memory)."""
        return self.fit(x, y).label_issues_.copy()

    @staticmethod
    def _cut(quality: np.ndarray, n_issues: int) -> float:
        """The quality below which ``n_issues`` of the rows (in proportion) lie."""
        if n_issues <= 0:
            return float(quality.min()) - 1.0
        return float(np.quantile(quality, min(n_issues / quality.size, 1.0), method="lower")) + 1e-12

    # -- streamed ------------------------------------------------------------------------------
    def _start(self) -> None:
        from sklearn.base import clone
        from sklearn.linear_model import SGDClassifier

        if self.n_classes is None or self.n_classes < 2:
            raise InputError("confident-learning: streaming needs n_classes (the number of classes, at least 2)")
        base = (
            self.estimator
            if self.estimator is not None
            else SGDClassifier(loss="log_loss", alpha=1e-3, random_state=self.seed)
        )
        if not hasattr(base, "partial_fit"):
            raise InputError(
                f"confident-learning: streaming needs an estimator with partial_fit, {type(base).__name__} has none"
            )
        _cleanlab()
        from cleanlab.experimental.label_issues_batched import LabelInspector

        self.n_classes_ = self.n_classes
        self.models_ = [clone(base) for _ in range(self.cv)]
        self._inspector = LabelInspector(num_class=self.n_classes, store_results=False, verbose=False)
        self._scores = Reservoir(self.capacity, self.seed)
        self._issues: list[np.ndarray] = []
        self._row = 0

    def _fold(self, n: int) -> np.ndarray:
        folds = np.arange(self._row, self._row + n) % self.cv
        self._row += n
        return folds

    def _out_of_fold(self, rows: np.ndarray, folds: np.ndarray) -> np.ndarray:
        proba = np.zeros((rows.shape[0], self.n_classes_))
        for f, model in enumerate(self.models_):
            sel = folds == f
            if sel.any():
                proba[sel] = _proba([model], rows[sel], self.n_classes_)
        return proba

    def _update(self, pass_index: int, x: Any, y: Any) -> None:
        rows = as_matrix(x, self.name)
        labels = as_labels(y, rows.shape[0], self.name)
        if labels.size and labels.max() >= self.n_classes_:
            raise InputError(f"confident-learning: label {int(labels.max())} is outside n_classes={self.n_classes_}")
        folds = self._fold(rows.shape[0])
        if pass_index < self.epochs:
            for f, model in enumerate(self.models_):
                keep = folds != f
                if keep.any():
                    model.partial_fit(rows[keep], labels[keep], classes=np.arange(self.n_classes_))
        elif pass_index == self.epochs:
            self._inspector.update_confident_thresholds(labels, self._out_of_fold(rows, folds))
        else:
            quality = np.asarray(self._inspector.score_label_quality(labels, self._out_of_fold(rows, folds)))
            self._scores.add(quality)
            self._issues.append(quality.astype(np.float32))

    def _finish(self, pass_index: int) -> None:
        self._row = 0
        if pass_index < self.passes - 1:
            return
        n_issues = int(self._inspector.get_num_issues(silent=True))
        sample = self._scores.sample
        cut = self._cut(sample, round(n_issues * sample.size / self._scores.seen))
        self.threshold_ = 1.0 - cut
        self.label_issues_ = np.concatenate(self._issues) < np.float32(cut)
        self._issues = []

    def _score(self, x: Any, y: Any) -> np.ndarray:
        rows = as_matrix(x, self.name)
        labels = as_labels(y, rows.shape[0], self.name)
        return 1.0 - _quality(labels, _proba(self.models_, rows, self.n_classes_))


__all__ = ["ConfidentLearning"]
