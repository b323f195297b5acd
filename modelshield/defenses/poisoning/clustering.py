"""Activation clustering: poison that the network learned separately forms a cluster of its own.

Chen, Carvalho, Baracaldo, Ludwig, Edwards, Lee, Molloy, Srivastava, "Detecting Backdoor Attacks
on Deep Neural Networks by Activation Clustering", SafeAI@AAAI 2019,
https://arxiv.org/abs/1811.03728.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from modelshield.core.errors import InputError
from modelshield.defenses.poisoning._activations import penultimate, torch_model
from modelshield.defenses.poisoning._data import as_labels
from modelshield.defenses.poisoning._moments import ClassMoments, class_of
from modelshield.defenses.poisoning._sketch import Reservoir
from modelshield.defenses.poisoning.base import PoisonDetector


class ActivationClustering(PoisonDetector):
    """Per class, split the penultimate-layer activations into two clusters and flag the smaller
    one when it holds less than ``size_threshold`` of the class; two passes.

    The paper reduces each class's activations to 10 dimensions (ICA) and runs 2-means; a
    cluster much smaller than the other is the poison. Here the reduction is PCA, which streams
    exactly from per-class moments (pass 1) and is deterministic, where ICA is neither. Pass 2
    keeps a reservoir (``capacity`` rows per class) of the reduced activations; 2-means is fitted
    on it and any row is then assigned to its nearest centre. ``score_samples`` is one minus the
    relative size of the row's cluster, and ``threshold_ = 1 − size_threshold``.

    Like spectral signatures it assumes the poison is a minority of its class: when a class is
    half poison the two clusters are about equal and neither is flagged.

    Args:
        model: the trained (possibly poisoned) ``TorchModel``.
        n_components: dimensions kept per class (default 10, the paper's).
        size_threshold: a cluster with less than this share of its class is poison (default 0.35).
        capacity: reservoir rows per class for 2-means (default 20,000).
        seed: seed of the reservoir and of k-means.
        batch_size: forward batch size.
    """

    name = "activation-clustering"
    passes = 2
    needs_labels = True

    def __init__(
        self,
        model: Any,
        *,
        n_components: int = 10,
        size_threshold: float = 0.35,
        capacity: int = 20_000,
        seed: int = 0,
        batch_size: int = 512,
    ) -> None:
        super().__init__()
        self.model = torch_model(model, self.name)
        if not 0 < size_threshold < 0.5:
            raise InputError(
                f"size_threshold is a share of the class below one half, in (0, 0.5); got {size_threshold}"
            )
        if n_components < 1:
            raise InputError(f"n_components must be at least 1, got {n_components}")
        self.n_components, self.size_threshold = n_components, size_threshold
        self.capacity, self.seed, self.batch_size = capacity, seed, batch_size
        self.threshold_ = 1.0 - size_threshold

    def _acts(self, x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
        acts, _ = penultimate(self.model, x, self.name, self.batch_size)
        return acts, as_labels(y, acts.shape[0], self.name)

    def _start(self) -> None:
        self._moments = ClassMoments()
        self._reduced: dict[int, Reservoir] = {}

    def _reduce(self, acts: np.ndarray, labels: np.ndarray) -> dict[int, np.ndarray]:
        class_of(labels, self._moments.count, self.name)
        return {int(c): (acts[labels == c] - self.mean_[int(c)]) @ self.basis_[int(c)] for c in np.unique(labels)}

    def _update(self, pass_index: int, x: Any, y: Any) -> None:
        acts, labels = self._acts(x, y)
        if pass_index == 0:
            self._moments.add(acts, labels)
            return
        for c, r in self._reduce(acts, labels).items():
            self._reduced.setdefault(c, Reservoir(self.capacity, self.seed + c)).add(r)

    def _finish(self, pass_index: int) -> None:
        from sklearn.cluster import KMeans

        if pass_index == 0:
            self.mean_ = {c: self._moments.mean(c) for c in self._moments.count}
            self.basis_ = {c: self._moments.directions(c, self.n_components) for c in self._moments.count}
            return
        self.centers_: dict[int, np.ndarray] = {}
        self.cluster_share_: dict[int, np.ndarray] = {}
        for c, res in self._reduced.items():
            sample = res.sample
            if sample.shape[0] < 2:
                self.centers_[c], self.cluster_share_[c] = sample[:1], np.ones(1)
                continue
            km = KMeans(2, n_init=10, random_state=self.seed).fit(sample)
            self.centers_[c] = km.cluster_centers_
            self.cluster_share_[c] = np.bincount(km.labels_, minlength=2) / sample.shape[0]

    def _score(self, x: Any, y: Any) -> np.ndarray:
        acts, labels = self._acts(x, y)
        out = np.empty(acts.shape[0])
        for c, r in self._reduce(acts, labels).items():
            nearest = ((r[:, None, :] - self.centers_[c][None]) ** 2).sum(axis=2).argmin(axis=1)
            out[labels == c] = 1.0 - self.cluster_share_[c][nearest]
        return out


__all__ = ["ActivationClustering"]
