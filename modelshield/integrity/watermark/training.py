"""Fine-tuning a copy of a PyTorch model: how watermarks are embedded, and how an adversary tries to wash them out."""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import Tensor, nn

from modelshield.core.datasets import Dataset
from modelshield.core.errors import CapabilityError, InputError
from modelshield.core.model import Model, TorchModel

Penalty = Callable[[nn.Module], Tensor]


def require_torch(model: Model | nn.Module, what: str) -> TorchModel:
    """Weights can only be read and trained on a white-box PyTorch model."""
    if isinstance(model, TorchModel):
        return model
    raise CapabilityError(
        f"{what} needs a white-box PyTorch model (TorchModel), not {type(model).__name__}",
        hint="load safetensors weights with their architecture, e.g. load_model(path, arch=..., input_shape=...)",
    )


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
    """Train a copy of ``model`` with Adam on ``data``; the original is left untouched.

    ``penalty(net)`` is added to every batch's cross-entropy (the weight watermark's regulariser);
    ``extra_per_batch`` samples of ``extra`` (trigger inputs and labels) are mixed into every batch.
    """
    if epochs < 0 or lr <= 0 or batch_size < 1:
        raise InputError(f"need epochs >= 0, lr > 0 and batch_size >= 1 (got {epochs}, {lr}, {batch_size})")
    if len(data) == 0:
        raise InputError("the training data is empty")
    model.check_inputs(data.x[:256], data.y[:256])
    tuned = copy.deepcopy(model)
    net = tuned.module
    params = list(net.parameters())
    for p in params:
        p.requires_grad_(True)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(params, lr=lr)
    dev = tuned.device
    x, y = data.x, data.y
    net.train()
    try:
        for _ in range(epochs):
            perm = torch.randperm(len(data), generator=gen)
            for i in range(0, len(data), batch_size):
                idx = perm[i : i + batch_size]
                xb, yb = x[idx], y[idx]
                if extra is not None and extra_per_batch > 0:
                    pick = torch.randint(0, extra[0].shape[0], (extra_per_batch,), generator=gen)
                    xb, yb = torch.cat([xb, extra[0][pick]]), torch.cat([yb, extra[1][pick]])
                loss = nn.functional.cross_entropy(tuned.logits(xb.to(dev)), yb.to(dev))
                if penalty is not None:
                    loss = loss + penalty(net)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
    finally:
        net.eval()
        for p in params:
            p.requires_grad_(False)
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
