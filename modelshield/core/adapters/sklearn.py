"""A fitted scikit-learn classifier as a black-box ``Model``."""

from __future__ import annotations

from collections.abc import Sequence
from math import prod
from typing import Any

import numpy as np
from torch import Tensor

from modelshield.core.adapters.base import BlackBoxModel, checked_labels, checked_scores, to_numpy
from modelshield.core.errors import InputError


class SklearnModel(BlackBoxModel):
    """A scikit-learn classifier; inputs are flattened to (N, features) for the estimator.

    Labels always come from the estimator's own ``predict``: that is what the deployed model
    decides, and it can disagree with argmax(``predict_proba``) (``SVC(probability=True)`` fits its
    probabilities by a separate Platt scaling). Scores, the log of ``predict_proba``, serve only
    score-based attacks; without ``predict_proba`` the model gives labels only (``has_scores =
    False``) and only decision-based attacks apply. Class ``i`` is the estimator's ``classes_[i]``,
    so string or non-contiguous labels map to indices 0..C-1.
    """

    labels_from_scores = False

    def __init__(
        self,
        estimator: Any,
        *,
        input_shape: Sequence[int],
        num_classes: int | None = None,
        bounds: tuple[float, float] = (0.0, 1.0),
    ) -> None:
        super().__init__(input_shape=input_shape, bounds=bounds)
        if not hasattr(estimator, "predict"):
            raise InputError(f"{type(estimator).__name__} has no predict method: not a fitted classifier")
        from sklearn.base import is_regressor

        if is_regressor(estimator):
            raise InputError(f"{type(estimator).__name__} is a regressor: assess evaluates classifiers")
        self.estimator = estimator
        self.has_scores = hasattr(estimator, "predict_proba")
        classes = getattr(estimator, "classes_", None)
        self._classes = None if classes is None else np.asarray(classes)
        if num_classes is None:
            if self._classes is None:
                raise InputError(f"{type(estimator).__name__} has no classes_; pass num_classes")
            num_classes = len(self._classes)
        elif self._classes is not None and len(self._classes) != num_classes:
            raise InputError(f"the estimator knows {len(self._classes)} classes, but num_classes={num_classes}")
        self.num_classes = int(num_classes)
        n_features = getattr(estimator, "n_features_in_", None)
        if n_features is not None and int(n_features) != prod(self.input_shape):
            raise InputError(
                f"the estimator takes {n_features} features, but the samples have {prod(self.input_shape)}",
                hint="give the data the feature columns the model was trained on",
            )

    def _features(self, x: Tensor) -> np.ndarray:
        return to_numpy(x.reshape(x.shape[0], -1))

    def _scores(self, x: Tensor) -> Tensor:
        proba = self.estimator.predict_proba(self._features(x))
        return checked_scores(proba, n=x.shape[0], num_classes=self.num_classes, probabilities=True, device=x.device)

    def _labels(self, x: Tensor) -> Tensor:
        self._count(x)
        pred = np.asarray(self.estimator.predict(self._features(x)))
        if self._classes is not None:
            idx = np.searchsorted(self._classes, pred).clip(0, len(self._classes) - 1)
            if pred.shape == idx.shape and not np.array_equal(self._classes[idx], pred):
                raise InputError(f"{type(self.estimator).__name__}.predict returned labels outside its classes_")
            pred = idx
        return checked_labels(pred, n=x.shape[0], num_classes=self.num_classes, device=x.device)
