"""Local intrinsic dimensionality (Ma, Li, Wang, Erfani, Wijewickrema, Schoenebeck, Song, Houle,
Bailey, "Characterizing Adversarial Subspaces Using Local Intrinsic Dimensionality", ICLR 2018,
https://arxiv.org/abs/1801.02613).

Adversarial regions have higher local dimensionality than the data manifold. For each layer, the
maximum-likelihood estimate ``LID(x) = −(1/k Σᵢ log(rᵢ / r_k))⁻¹`` over the distances rᵢ to the
k nearest neighbours in a reference batch of clean inputs gives one feature; a logistic
regression over the per-layer LIDs, trained on clean (and noisy) against adversarial inputs,
gives the score. It is supervised: fit needs adversarial examples, and generates PGD ones when
none are given.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from torch import Tensor

from modelshield.attacks.evasion import PGD
from modelshield.attacks.evasion._common import check_count
from modelshield.core.errors import InputError
from modelshield.core.model import Model
from modelshield.defenses.detection.base import Detector, white_box
from modelshield.defenses.detection.features import dense_layers, features_and_logits


def lid_mle(distances: Tensor) -> Tensor:
    """LID estimates (N,) from ascending k-NN distances (N, k), Levina–Bickel MLE."""
    d = distances.clamp_min(1e-12)
    return -1.0 / (torch.log(d / d[:, -1:]).mean(dim=1) - 1e-12)


class LIDDetector(Detector):
    """Score = logistic-regression logit over per-layer LID estimates.

    Args:
        model: a white-box PyTorch classifier with ``nn.Linear`` layers.
        k: neighbours per estimate (default 20, Ma et al.).
        reference_size: clean inputs kept as the neighbour pool (default 100, the paper's minibatch).
        fit_eps: L∞ budget of the PGD examples fit generates when none are given
            (default 10% of the input range).
        noise: σ of the Gaussian-noised clean copies added as negatives (default 5% of the range).
        seed: seed for the reference draw and the noise.
    """

    name = "lid"
    supervised = True

    def __init__(
        self,
        model: Model,
        k: int = 20,
        reference_size: int = 100,
        fit_eps: float | None = None,
        noise: float | None = None,
        seed: int = 0,
    ) -> None:
        self._net = white_box(model, "lid")
        super().__init__(self._net)
        self.k = check_count("k", k)
        self.reference_size = check_count("reference_size", reference_size, minimum=k + 1)
        lo, hi = model.bounds
        self.fit_eps = 0.1 * (hi - lo) if fit_eps is None else float(fit_eps)
        self.noise = 0.05 * (hi - lo) if noise is None else float(noise)
        self.seed = seed
        self._layers = dense_layers(self._net)

    def _representations(self, x: Tensor) -> list[Tensor]:
        feats, logits = features_and_logits(self._net, x, self._layers)
        return [*feats, logits]

    def _lids(self, x: Tensor) -> Tensor:
        """(N, layers) LID estimates against the reference pool (disjoint from the inputs fit scores)."""
        cols = []
        for rep, ref in zip(self._representations(x), self.reference_, strict=True):
            knn = torch.cdist(rep, ref).topk(self.k, dim=1, largest=False).values
            cols.append(lid_mle(knn))
        return torch.stack(cols, dim=1)

    def _fit(self, x: Tensor, y: Tensor, x_adv: Tensor | None) -> None:
        if len(x) < self.reference_size + 10:
            raise InputError(
                f"the LID detector needs at least {self.reference_size + 10} clean samples to fit, got {len(x)}"
            )
        gen = torch.Generator().manual_seed(self.seed)
        order = torch.randperm(len(x), generator=gen).to(x.device)
        ref_idx, train_idx = order[: self.reference_size], order[self.reference_size :]
        with torch.no_grad():
            self.reference_ = [r.detach() for r in self._representations(x[ref_idx])]
        clean = x[train_idx]
        if x_adv is None:
            x_adv = PGD(eps=self.fit_eps, steps=10, seed=self.seed)(self.model, clean, y[train_idx])
        lo, hi = self.model.bounds
        noisy = (clean + self.noise * torch.randn(clean.shape, generator=gen).to(clean.device)).clamp(lo, hi)
        with torch.no_grad():
            negatives = torch.cat([self._lids(clean), self._lids(noisy)])
            positives = self._lids(x_adv)
        features = torch.cat([negatives, positives]).double().cpu().numpy()
        labels = np.r_[np.zeros(len(negatives)), np.ones(len(positives))]
        mean, std = features.mean(axis=0), features.std(axis=0) + 1e-12
        lr = LogisticRegression(max_iter=1000).fit((features - mean) / std, labels)
        device = x.device
        self.mean_ = torch.as_tensor(mean, dtype=torch.float32, device=device)
        self.std_ = torch.as_tensor(std, dtype=torch.float32, device=device)
        self.coef_ = torch.as_tensor(lr.coef_[0], dtype=torch.float32, device=device)
        self.intercept_ = float(lr.intercept_[0])

    def score_tensor(self, x: Tensor) -> Tensor:
        return ((self._lids(x) - self.mean_) / self.std_) @ self.coef_ + self.intercept_


__all__ = ["LIDDetector", "lid_mle"]
