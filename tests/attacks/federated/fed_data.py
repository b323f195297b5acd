"""Helpers shared by the federated-attack tests: a tiny digits network and one client's gradient.

A module of its own: ``from conftest import ...`` resolves to whichever conftest.py pytest loaded last.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F


def tiny_mlp(seed: int = 0) -> nn.Sequential:
    """64 → 32 (sigmoid) → 10 on flattened 8×8 digits: DLG's setting, a small twice-differentiable network."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.Sigmoid(), nn.Linear(32, 10))


def client_gradient(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> list[np.ndarray]:
    """What a FedSGD client shares: the gradient of its mean cross-entropy, one array per parameter."""
    grads = torch.autograd.grad(F.cross_entropy(model(x), y), list(model.parameters()))
    return [g.numpy() for g in grads]
