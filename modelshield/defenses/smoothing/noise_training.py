"""Gaussian data augmentation: the base classifier randomized smoothing needs.

A model never shown noisy inputs votes almost at random under σ = 0.25 noise, and the smoothed
classifier abstains. Cohen et al. train the base model on ``x + N(0, σ²I)`` with the same σ used
for certification (section 4 of the paper).
"""

from __future__ import annotations

import torch
from torch import nn

from modelshield.core.datasets import Dataset
from modelshield.core.errors import InputError
from modelshield.core.model import TorchModel


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
    """Train ``model`` in place with Adam on Gaussian-noised inputs; return it, frozen, in eval mode.

    Noise is added in the model's input units (before any normalisation the adapter applies),
    the same space smoothing certifies in.
    """
    if not sigma >= 0:
        raise InputError(f"sigma must be non-negative, got {sigma}")
    if epochs < 1 or batch_size < 1:
        raise InputError("epochs and batch_size must be at least 1")
    module = model.module
    params = list(module.parameters())
    if not params:
        raise InputError("the model has no parameters to train")
    gen = torch.Generator().manual_seed(seed)
    x, y = data.x.to(model.device), data.y.to(model.device)
    for p in params:
        p.requires_grad_(True)
    module.train()
    opt = torch.optim.Adam(params, lr=lr)
    try:
        for _ in range(epochs):
            order = torch.randperm(len(x), generator=gen).to(model.device)
            for idx in order.split(batch_size):
                noisy = x[idx] + sigma * torch.randn(x[idx].shape, generator=gen).to(model.device)
                opt.zero_grad(set_to_none=True)
                nn.functional.cross_entropy(model.logits(noisy), y[idx]).backward()
                opt.step()
    finally:
        module.eval()
        for p in params:
            p.requires_grad_(False)
        model.reset_queries()
    return model


__all__ = ["train_with_noise"]
