"""Reference (shadow) models: the same training recipe run on random halves of a data pool.

LiRA, RMIA and Shokri's shadow attack all learn how a sample's score behaves when it is or is not in the
training set by retraining the target's recipe. The pool is split as Carlini et al.'s code does: for
every sample, exactly half of the ``n_models`` reference models train on it (random keys sorted per
sample), so each sample has as many IN as OUT models. Samples are matched to the pool by their bytes
and label, so the attacks can be asked about any rows: rows outside the pool are OUT for every model.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from modelshield.attacks.privacy._signals import check_labelled, log_probs
from modelshield.core.errors import InputError
from modelshield.core.model import Model

TrainFn = Callable[[Tensor, Tensor], Model]
"""Train a fresh model on (x, y) the way the target was trained, and return it."""


def _row_keys(x: Tensor, y: Tensor) -> list[bytes]:
    xs = x.detach().cpu().float().reshape(x.shape[0], -1).numpy()
    ys = y.detach().cpu().long().numpy()
    return [
        hashlib.blake2b(row.tobytes() + int(label).to_bytes(8, "little"), digest_size=16).digest()
        for row, label in zip(xs, ys, strict=True)
    ]


@dataclass
class ReferenceModels:
    """``models[k]`` was trained on the pool rows where ``in_mask[k]`` is True.

    Train them once with :meth:`train` and hand the same object to several attacks; each model's
    log-probabilities on a batch are cached, so LiRA, RMIA and the shadow attack on the same rows
    query every reference model once.
    """

    models: list[Model]
    in_mask: np.ndarray
    pool_x: Tensor
    pool_y: Tensor
    _index: dict[bytes, int] = field(default_factory=dict, repr=False)
    _cache: dict[bytes, list[Tensor]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._index = {key: i for i, key in enumerate(_row_keys(self.pool_x, self.pool_y))}

    @classmethod
    def train(
        cls,
        train_fn: TrainFn,
        x: Tensor,
        y: Tensor,
        *,
        n_models: int = 8,
        seed: int = 0,
    ) -> ReferenceModels:
        """Train ``n_models`` (an even number ≥ 2) with ``train_fn``, each on half of the pool ``x``, ``y``."""
        if isinstance(n_models, bool) or not isinstance(n_models, int) or n_models < 2 or n_models % 2:
            raise InputError(
                f"reference models come in IN/OUT pairs: n_models must be an even integer ≥ 2, got {n_models!r}"
            )
        if x.shape[0] < 2 or x.shape[0] != y.shape[0]:
            raise InputError(
                f"the reference pool needs at least 2 labelled samples, got x {tuple(x.shape)}, y {tuple(y.shape)}"
            )
        keys = np.random.default_rng(seed).random((n_models, x.shape[0]))
        in_mask = keys.argsort(axis=0).argsort(axis=0) < n_models // 2
        labels = y.cpu().numpy()
        classes = np.unique(labels)
        models = []
        for k in range(n_models):
            idx = np.flatnonzero(in_mask[k])
            if len(np.unique(labels[idx])) < len(classes):
                raise InputError(
                    f"half of the reference pool lacks some of its {len(classes)} classes, so a reference model "
                    "would not know them",
                    hint="give more samples per class (members, non-members or a population)",
                )
            rows = torch.from_numpy(idx)
            models.append(train_fn(x[rows], y[rows]))
        return cls(models, in_mask, x, y)

    @property
    def n_models(self) -> int:
        return len(self.models)

    def membership(self, x: Tensor, y: Tensor) -> np.ndarray:
        """(K, N) bool: which reference models trained on each row (False for rows outside the pool)."""
        out = np.zeros((self.n_models, x.shape[0]), dtype=bool)
        for j, key in enumerate(_row_keys(x, y)):
            i = self._index.get(key)
            if i is not None:
                out[:, j] = self.in_mask[:, i]
        return out

    def log_probs(self, x: Tensor, y: Tensor) -> list[Tensor]:
        """Each reference model's (N, C) log-probabilities on ``x`` (cached by content)."""
        key = hashlib.blake2b(b"".join(_row_keys(x, y)), digest_size=16).digest()
        if key not in self._cache:
            for model in self.models:
                check_labelled(model, x, y)
            self._cache[key] = [log_probs(model, x) for model in self.models]
        return self._cache[key]


def check_reference(references: Any, attack: str) -> ReferenceModels:
    if not isinstance(references, ReferenceModels):
        raise InputError(
            f"{attack} needs ReferenceModels (ReferenceModels.train(train_fn, x, y)), got {type(references).__name__}"
        )
    return references


def sklearn_train_fn(
    estimator: Any, *, input_shape: Sequence[int], bounds: tuple[float, float] = (0.0, 1.0)
) -> TrainFn:
    """A ``train_fn`` that refits a fresh clone of a scikit-learn ``estimator`` (same hyperparameters)."""
    from sklearn.base import clone

    from modelshield.core.adapters.sklearn import SklearnModel

    def train(x: Tensor, y: Tensor) -> Model:
        fitted = clone(estimator).fit(x.reshape(x.shape[0], -1).cpu().numpy(), y.cpu().numpy())
        return SklearnModel(fitted, input_shape=input_shape, bounds=bounds)

    return train


__all__ = ["ReferenceModels", "TrainFn", "sklearn_train_fn"]
