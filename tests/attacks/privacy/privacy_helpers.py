"""Helpers for the privacy-attack tests: the audit pool's shape and a train_fn that trains the test MLP
through the project's training loop (what a user passes to the reference-model attacks)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from modelshield.core.datasets import Dataset
from modelshield.core.model import TorchModel
from modelshield.defenses.training import StandardTraining, TrainConfig

N_MEMBERS = 100
EXTRA = 1000


@dataclass
class Audit:
    """The pool an audit scores (first half members of the target's training set, second half not) and other digits."""

    x: Tensor
    y: Tensor
    is_member: np.ndarray
    extra_x: Tensor
    extra_y: Tensor

    @property
    def members(self) -> tuple[Tensor, Tensor]:
        return self.x[self.is_member], self.y[self.is_member]


def mlp_train_fn(epochs: int = 300, weight_decay: float = 0.0, seed: int = 0) -> Callable[[Tensor, Tensor], TorchModel]:
    """train_fn for the attacks: a fresh 64-256-10 MLP, full-batch Adam through the project's training loop."""

    def train(x: Tensor, y: Tensor) -> TorchModel:
        torch.manual_seed(seed)
        net = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 10))
        model = TorchModel(net, input_shape=(64,), num_classes=10)
        cfg = TrainConfig(
            epochs=epochs,
            batch_size=len(x),
            lr=1e-2,
            val_fraction=0.0,
            progress=False,
            weight_decay=weight_decay,
            seed=seed,
        )
        StandardTraining().fit(model, Dataset(x, y, "digits"), cfg)
        return model

    return train
