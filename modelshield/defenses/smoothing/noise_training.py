"""Gaussian data augmentation: the base classifier randomized smoothing needs.

A model never shown noisy inputs votes almost at random under σ = 0.25 noise, and the smoothed
classifier abstains. Cohen et al. train the base model on ``x + N(0, σ²I)`` with the same σ used
for certification (section 4 of the paper). It is one more method of the shared training loop
(``modelshield.defenses.training``): only the minibatch rule differs.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F

from modelshield.core.datasets import Dataset
from modelshield.core.errors import InputError
from modelshield.core.model import TorchModel
from modelshield.defenses.training.config import TrainConfig
from modelshield.defenses.training.step import Step
from modelshield.defenses.training.trainer import Trainer


class GaussianAugmentation(Trainer):
    """Cross-entropy on ``x + N(0, σ²I)``, the noise drawn in the model's input units (before any normalisation
    the adapter applies), the space smoothing certifies in."""

    name = "gaussian-noise"

    def __init__(self, sigma: float) -> None:
        if not sigma >= 0:
            raise InputError(f"sigma must be non-negative, got {sigma}")
        self.sigma = float(sigma)

    def train_batch(self, step: Step, x: Tensor, y: Tensor) -> Tensor:
        noisy = x + self.sigma * torch.randn_like(x)
        loss = F.cross_entropy(step.model.logits(noisy), y)
        step.update(loss)
        return loss.detach()


def train_with_noise(
    model: TorchModel,
    data: Dataset,
    sigma: float,
    *,
    epochs: int = 15,
    lr: float = 3e-3,
    batch_size: int = 64,
    seed: int = 0,
) -> TorchModel:
    """Train ``model`` in place with Adam on Gaussian-noised inputs; return it, frozen, in eval mode."""
    config = TrainConfig(epochs=epochs, lr=lr, batch_size=batch_size, seed=seed, val_fraction=0.0, progress=False)
    GaussianAugmentation(sigma).fit(model, data, config)
    model.reset_queries()
    return model


__all__ = ["GaussianAugmentation", "train_with_noise"]
