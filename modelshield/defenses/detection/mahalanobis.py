"""Mahalanobis distance on penultimate features (Lee, Lee, Lee, Shin, "A Simple Unified Framework
for Detecting Out-of-Distribution Samples and Adversarial Attacks", NeurIPS 2018,
https://arxiv.org/abs/1807.03888).

Fit class-conditional Gaussians with one shared (tied) covariance to the clean features; an
input's score is its Mahalanobis distance to the closest class mean. Optional input
pre-processing moves the input a step ``noise`` towards higher confidence first, which the
paper found separates clean from adversarial inputs further.
"""

from __future__ import annotations

import torch
from torch import Tensor

from modelshield.attacks.evasion._common import check_positive
from modelshield.core.errors import InputError
from modelshield.core.model import Model
from modelshield.defenses.detection.base import Detector, white_box
from modelshield.defenses.detection.features import dense_layers, features_and_logits


class MahalanobisDetector(Detector):
    """Score = ``min_c (f − μ_c)ᵀ Σ⁻¹ (f − μ_c)`` on the input of the model's last dense layer.

    Args:
        model: a white-box PyTorch classifier with at least one ``nn.Linear`` layer.
        noise: input pre-processing step (L∞, in input units; default 0 = off).
    """

    name = "mahalanobis"

    def __init__(self, model: Model, noise: float = 0.0) -> None:
        self._net = white_box(model, "mahalanobis")
        super().__init__(self._net)
        self.noise = check_positive("noise", noise, allow_zero=True)
        self._layer = dense_layers(self._net)[-1:]

    def _features(self, x: Tensor) -> Tensor:
        return features_and_logits(self._net, x, self._layer)[0][0]

    def _fit(self, x: Tensor, y: Tensor, x_adv: Tensor | None) -> None:
        with torch.no_grad():
            feats = torch.cat([self._features(chunk) for chunk in x.split(512)]).double()
        classes = torch.unique(y)
        if len(classes) < 2:
            raise InputError("the Mahalanobis detector needs clean samples of at least two classes")
        means = torch.zeros((self.model.num_classes, feats.shape[1]), dtype=torch.float64, device=feats.device)
        present = torch.zeros(self.model.num_classes, dtype=torch.bool, device=feats.device)
        for c in classes.tolist():
            means[c] = feats[y == c].mean(dim=0)
            present[c] = True
        centred = feats - means[y]
        covariance = centred.T @ centred / len(feats)
        self.means_ = means[present].float()
        self.precision_ = torch.linalg.pinv(covariance, hermitian=True).float()

    def _distance(self, x: Tensor) -> Tensor:
        diff = self._features(x)[:, None, :] - self.means_[None]
        return torch.einsum("nkd,de,nke->nk", diff, self.precision_, diff).amin(dim=1)

    def score_tensor(self, x: Tensor) -> Tensor:
        if self.noise > 0:
            with torch.enable_grad():
                probe = x.detach().requires_grad_(True)
                (grad,) = torch.autograd.grad(self._distance(probe).sum(), probe)
            x = x - (self.noise * grad.sign()).detach()  # identity backward: the step itself is BPDA'd
        return self._distance(x)


__all__ = ["MahalanobisDetector"]
