"""Activation clustering: poison that the network learned separately forms a cluster of its own.

Chen, Carvalho, Baracaldo, Ludwig, Edwards, Lee, Molloy, Srivastava, "Detecting Backdoor Attacks
on Deep Neural Networks by Activation Clustering", SafeAI@AAAI 2019,
https://arxiv.org/abs/1811.03728.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from modelshield.core.errors import InputError
from modelshield.defenses.poisoning._activations import ActivationDetector
from modelshield.defenses.poisoning._sketch import Reservoir


class ActivationClustering(ActivationDetector):
    """Per class, reduce the penultimate-layer activations to ``n_components`` independent
    components (FastICA), split them into two clusters by 2-means, and flag the smaller cluster
    when it holds less than ``size_threshold`` of the class; one pass.

    That is the paper's pipeline (ICA to 10 dimensions, 2-means, relative size); ICA is limited to
    the components the activations span (dead ReLU units), and a class on which its fixed-point
    iteration diverges is reduced by PCA instead (FastICA tolerance 5e-3). ICA and k-means
    are fitted on a uniform reservoir of each class's activations (``capacity`` rows per class,
    the whole class while it fits, so streamed and in-memory answers agree then); any row is then
    projected and assigned to its nearest centre. ``score_samples`` is one minus the relative size
    of the row's cluster, and ``threshold_ = 1 − size_threshold``.

    It assumes the poison is a minority of its class: when a class is half poison (a 10 %
    BadNets poison into one of ten classes) the two clusters are about equal and the smaller one
    is not the poison. See docs/poisoning-defences.md for measured recall.

    Args:
        model: the trained (possibly poisoned) ``TorchModel``.
        n_components: independent components kept per class (default 10, the paper's).
        size_threshold: a cluster with less than this share of its class is poison (default 0.35).
        capacity: reservoir rows per class (default 20,000).
        seed: seed of the reservoir, ICA and k-means.
        batch_size: forward batch size.
    """

    name = "activation-clustering"

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
        super().__init__(model, batch_size)
        if not 0 < size_threshold < 0.5:
            raise InputError(
                f"size_threshold is a share of the class below one half, in (0, 0.5); got {size_threshold}"
            )
        if n_components < 1:
            raise InputError(f"n_components must be at least 1, got {n_components}")
        self.n_components, self.size_threshold = n_components, size_threshold
        self.capacity, self.seed, self.batch_size = capacity, seed, batch_size
        self.threshold_ = 1.0 - size_threshold

    def _start(self) -> None:
        self._acts_by_class: dict[int, Reservoir] = {}

    def _update(self, pass_index: int, x: Any, y: Any) -> None:
        acts, labels = self._acts(x, y)
        for c in np.unique(labels):
            self._acts_by_class.setdefault(int(c), Reservoir(self.capacity, self.seed + int(c))).add(acts[labels == c])

    def _finish(self, pass_index: int) -> None:
        from sklearn.cluster import KMeans
        from sklearn.decomposition import PCA, FastICA

        self.reducer_: dict[int, Any] = {}  # None for a class with nothing to split
        self.centers_: dict[int, np.ndarray] = {}
        self.cluster_share_: dict[int, np.ndarray] = {}
        for c, res in self._acts_by_class.items():
            sample = res.sample
            # ICA cannot whiten more components than the activations span (dead ReLU units, tiny classes)
            sv = np.linalg.svd(sample - sample.mean(axis=0), compute_uv=False)
            k = min(self.n_components, int((sv > sv[0] * 1e-6).sum()) if sv.size and sv[0] > 0 else 0)
            if k < 1 or sample.shape[0] < 2:  # nothing to split: one cluster, the whole class
                self.reducer_[c], self.centers_[c], self.cluster_share_[c] = None, np.zeros((1, 1)), np.ones(1)
                continue
            reducer: Any = FastICA(k, whiten="arbitrary-variance", max_iter=1000, tol=5e-3, random_state=self.seed)
            try:
                with warnings.catch_warnings():  # a class ICA cannot fully unmix still clusters
                    warnings.simplefilter("ignore", category=ConvergenceWarning)
                    reduced = reducer.fit_transform(sample)
                if not np.isfinite(reduced).all():
                    raise ValueError("ICA diverged")
            except ValueError:  # ICA's fixed point diverged on this class: its PCA whitening step alone
                reducer = PCA(k, random_state=self.seed)
                reduced = reducer.fit_transform(sample)
            km = KMeans(2, n_init=10, random_state=self.seed).fit(reduced)
            self.reducer_[c], self.centers_[c] = reducer, km.cluster_centers_
            self.cluster_share_[c] = np.bincount(km.labels_, minlength=2) / sample.shape[0]
        self._acts_by_class = {}

    def _score(self, x: Any, y: Any) -> np.ndarray:
        acts, labels = self._acts(x, y)
        missing = set(np.unique(labels).tolist()) - set(self.reducer_)
        if missing:
            raise InputError(f"{self.name}: class {min(missing)} was not in the data the detector was fitted on")
        out = np.empty(acts.shape[0])
        for c in np.unique(labels):
            sel = labels == c
            reducer = self.reducer_[int(c)]
            r = reducer.transform(acts[sel]) if reducer is not None else np.zeros((int(sel.sum()), 1))
            nearest = ((r[:, None, :] - self.centers_[int(c)][None]) ** 2).sum(axis=2).argmin(axis=1)
            out[sel] = 1.0 - self.cluster_share_[int(c)][nearest]
        return out


__all__ = ["ActivationClustering"]
