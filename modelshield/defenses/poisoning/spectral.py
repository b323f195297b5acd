"""Spectral signatures: a backdoor leaves a trace along the top singular direction of a class.

Tran, Li, Madry, "Spectral Signatures in Backdoor Attacks", NeurIPS 2018,
https://arxiv.org/abs/1811.00636.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from modelshield.core.errors import InputError
from modelshield.defenses.poisoning._activations import ActivationDetector
from modelshield.defenses.poisoning._moments import ClassMoments, class_of
from modelshield.defenses.poisoning._sketch import Reservoir


class SpectralSignatures(ActivationDetector):
    """Per class, score rows by their squared projection on the top singular vector of the centred
    penultimate-layer activations, and flag the top ``removal · eps`` of each class; two passes.

    The paper's rule: with at most an ``eps`` fraction of poison in a class, removing the
    ``1.5 · eps`` highest-scoring rows of every class removes the poison. The score is
    two-sided (distance from the class mean along the direction), so it assumes the poison is a
    minority of its class: when it is half the class (a 10 % BadNets poison into one of ten
    classes), clean rows lie as far from the mean as poison rows and the rule breaks down. See
    docs/poisoning-defences.md for the measured effect.

    Pass 1 sums per-class activation moments (O(classes · d²)); the top eigenvector of each
    class's covariance is the top right singular vector of its centred activations. Pass 2 keeps a
    reservoir of each class's scores and reads the ``1 − removal · eps`` quantile from it (exact
    while a class fits ``capacity``). ``score_samples`` is the score divided by its class's
    threshold, so ``threshold_`` is 1 and scores compare across classes.

    Args:
        model: the trained (possibly poisoned) ``TorchModel``.
        eps: upper bound on the poison fraction of a class (default 0.1).
        removal: multiple of ``eps`` flagged per class (default 1.5, the paper's).
        capacity: per-class reservoir of scores (default 100,000).
        batch_size: forward batch size.
    """

    name = "spectral-signatures"
    passes = 2

    def __init__(
        self, model: Any, *, eps: float = 0.1, removal: float = 1.5, capacity: int = 100_000, batch_size: int = 512
    ) -> None:
        super().__init__(model, batch_size)
        if not 0 < eps * removal < 1:
            raise InputError(f"eps · removal is the fraction flagged per class, in (0, 1); got {eps} · {removal}")
        self.eps, self.removal, self.capacity, self.batch_size = eps, removal, capacity, batch_size
        self.threshold_ = 1.0

    def _start(self) -> None:
        self._moments = ClassMoments()
        self._scores: dict[int, Reservoir] = {}

    def _update(self, pass_index: int, x: Any, y: Any) -> None:
        acts, labels = self._acts(x, y)
        if pass_index == 0:
            self._moments.add(acts, labels)
            return
        raw = self._raw(acts, labels)
        for c in np.unique(labels):
            self._scores.setdefault(int(c), Reservoir(self.capacity, int(c))).add(raw[labels == c])

    def _finish(self, pass_index: int) -> None:
        if pass_index == 0:
            self.mean_ = {c: self._moments.mean(c) for c in self._moments.count}
            self.direction_ = {c: self._moments.directions(c, 1)[:, 0] for c in self._moments.count}
            return
        q = 1 - self.eps * self.removal
        self.class_threshold_ = {c: float(np.quantile(r.sample, q)) or 1e-12 for c, r in self._scores.items()}

    def _raw(self, acts: np.ndarray, labels: np.ndarray) -> np.ndarray:
        class_of(labels, self._moments.count, self.name)
        out = np.empty(acts.shape[0])
        for c in np.unique(labels):
            sel = labels == c
            out[sel] = ((acts[sel] - self.mean_[int(c)]) @ self.direction_[int(c)]) ** 2
        return out

    def _score(self, x: Any, y: Any) -> np.ndarray:
        acts, labels = self._acts(x, y)
        raw = self._raw(acts, labels)
        return raw / np.array([self.class_threshold_[int(c)] for c in labels]) if raw.size else raw


__all__ = ["SpectralSignatures"]
