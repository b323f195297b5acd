"""Fine-tuning a copy of a PyTorch model: how watermarks are embedded, and how an adversary tries to wash them out."""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import Tensor, nn

from modelshield.core.datasets import Dataset
from modelshield.core.errors import CapabilityError, InputError
from modelshield.core.model import Model, TorchModel
from modelshield.defenses.training.config import TrainConfig
from modelshield.defenses.training.step import Step
from modelshield.defenses.training.trainer import Trainer

Penalty = Callable[[nn.Module], Tensor]


def require_torch(model: Model | nn.Module, what: str) -> TorchModel:
    """Weights can only be read and trained on a white-box PyTorch model."""
    if isinstance(model, TorchModel):
        return model
    raise CapabilityError(
        f"{what} needs a white-box PyTorch model (TorchModel), not {type(model).__name__}",
        hint="load safetensors weights with their architecture, e.g. load_model(path, arch=..., input_shape=...)",
    )


class FineTune(Trainer):
    """Cross-entropy plus the watermark's terms: ``penalty(net)`` added to every batch's loss (the weight watermark's
    regulariser), and ``extra_per_batch`` samples of ``extra`` (trigger inputs and labels) mixed into every batch."""

    name = "watermark-fine-tune"

    def __init__(
        self, penalty: Penalty | None = None, extra: tuple[Tensor, Tensor] | None = None, extra_per_batch: int = 0
    ) -> None:
        self._penalty, self._extra = penalty, extra
        self.extra_per_batch = extra_per_batch if extra is not None else 0

    def train_batch(self, step: Step, x: Tensor, y: Tensor) -> Tensor:
        if self._extra is not None and self.extra_per_batch > 0:
            extra_x, extra_y = self._extra
            pick = torch.randint(0, extra_x.shape[0], (self.extra_per_batch,))
            x = torch.cat([x, extra_x[pick].to(x.device)])
            y = torch.cat([y, extra_y[pick].to(y.device)])
        loss = nn.functional.cross_entropy(step.model.logits(x), y)
        if self._penalty is not None:
            loss = loss + self._penalty(step.model.module)
        step.update(loss)
        return loss.detach()


def fine_tune(
    model: TorchModel,
    data: Dataset,
    *,
    epochs: int,
    lr: float,
    seed: int = 0,
    batch_size: int = 64,
    penalty: Penalty | None = None,
    extra: tuple[Tensor, Tensor] | None = None,
    extra_per_batch: int = 0,
) -> TorchModel:
    """Train a copy of ``model`` with Adam on ``data`` (the shared training loop); the original is left untouched.

    ``epochs=0`` gives an untrained copy (an attacker who does not fine-tune at all).
    """
    if epochs < 0 or lr <= 0 or batch_size < 1:
        raise InputError(f"need epochs >= 0, lr > 0 and batch_size >= 1 (got {epochs}, {lr}, {batch_size})")
    if len(data) == 0:
        raise InputError("the training data is empty")
    tuned = copy.deepcopy(model)
    if epochs > 0:
        config = TrainConfig(epochs=epochs, lr=lr, batch_size=batch_size, seed=seed, val_fraction=0.0, progress=False)
        FineTune(penalty, extra, extra_per_batch).fit(tuned, data, config)
    tuned.reset_queries()
    return tuned


def magnitude_prune(model: TorchModel, ratio: float) -> TorchModel:
    """A copy with the ``ratio`` smallest-magnitude weights of all conv and linear layers set to zero (global)."""
    if not 0.0 <= ratio < 1.0:
        raise InputError(f"the pruning ratio must lie in [0, 1), not {ratio}")
    pruned = copy.deepcopy(model)
    weights = [
        m.weight for m in pruned.module.modules() if isinstance(m, nn.Conv1d | nn.Conv2d | nn.Conv3d | nn.Linear)
    ]
    if not weights or ratio == 0.0:
        return pruned
    magnitudes = torch.cat([w.detach().abs().flatten() for w in weights])
    k = int(ratio * magnitudes.numel())
    if k == 0:
        return pruned
    threshold = magnitudes.kthvalue(k).values
    with torch.no_grad():
        for w in weights:
            w.masked_fill_(w.abs() <= threshold, 0.0)
    return pruned


def accuracy(model: Model, data: Dataset) -> float:
    """Top-1 accuracy on ``data``."""
    return float((model.predict(data.x.to(model.device)).cpu() == data.y).float().mean())
