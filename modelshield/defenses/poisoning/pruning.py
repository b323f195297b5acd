"""Fine-pruning: cut the units clean data leaves dormant (where backdoors hide), then fine-tune.

Liu, Dolan-Gavitt, Garg, "Fine-Pruning: Defending Against Backdooring Attacks on Deep Neural
Networks", RAID 2018, https://arxiv.org/abs/1805.12185.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn.utils import prune

from modelshield.core.errors import CapabilityError, InputError
from modelshield.core.model import TorchModel
from modelshield.defenses.poisoning._activations import as_inputs, torch_model
from modelshield.defenses.poisoning.base import Batch

BatchFactory = Callable[[], Iterable[Batch]]


def prunable_layer(module: nn.Module) -> nn.Conv2d | nn.Linear:
    """The last convolution, or without one the last hidden linear layer (not the classifier)."""
    convs = [m for m in module.modules() if isinstance(m, nn.Conv2d)]
    if convs:
        return convs[-1]
    linears = [m for m in module.modules() if isinstance(m, nn.Linear)]
    if len(linears) < 2:
        raise CapabilityError("fine-pruning needs a convolution or a hidden linear layer before the classifier")
    return linears[-2]


class FinePruning:
    """Prune the last convolution's (or hidden layer's) least active units on clean data, then fine-tune.

    A backdoor tends to live in units that clean inputs barely use; removing them (in increasing
    order of mean post-ReLU activation on clean data) removes the backdoor's path while clean
    accuracy holds, and fine-tuning on the clean data repairs the rest. Units are pruned as many as
    keep clean accuracy within ``max_accuracy_drop`` of the unpruned model's (found by bisection,
    one pass over the clean data per step), or ``prune_fraction`` of them if given; the pruned units
    stay at zero through fine-tuning (a weight mask, made permanent at the end).

    ``fit(model, x, y)`` / ``fit_stream(model, batches)`` leave a repaired copy in ``model_`` (the
    given model is not changed), the pruned unit indices in ``pruned_`` and the clean accuracies in
    ``accuracy_before_``, ``accuracy_pruned_`` and ``accuracy_after_``. Streaming makes one pass for
    activations, about log2(units) for the bisection and ``epochs`` for fine-tuning, keeping one
    running sum per unit.

    Args:
        max_accuracy_drop: clean accuracy the pruning alone may cost (default 0.05).
        prune_fraction: prune this share of units instead of searching (default None).
        epochs: fine-tuning passes over the clean data (default 20).
        lr: Adam learning rate for fine-tuning (default 1e-2: on a small trusted set, gentler
            fine-tuning keeps the backdoor; see docs/poisoning-defences.md).
        batch_size: fine-tuning batch size in memory (default 32).
        seed: seed of the in-memory shuffles.
    """

    name = "fine-pruning"

    def __init__(
        self,
        *,
        max_accuracy_drop: float = 0.05,
        prune_fraction: float | None = None,
        epochs: int = 20,
        lr: float = 1e-2,
        batch_size: int = 32,
        seed: int = 0,
    ) -> None:
        if not 0 <= max_accuracy_drop < 1:
            raise InputError(f"max_accuracy_drop must be in [0, 1), got {max_accuracy_drop}")
        if prune_fraction is not None and not 0 < prune_fraction < 1:
            raise InputError(f"prune_fraction must be in (0, 1), got {prune_fraction}")
        if epochs < 0 or lr <= 0 or batch_size < 1:
            raise InputError("epochs must be ≥ 0, lr > 0 and batch_size ≥ 1")
        self.max_accuracy_drop, self.prune_fraction = max_accuracy_drop, prune_fraction
        self.epochs, self.lr, self.batch_size, self.seed = epochs, lr, batch_size, seed
        self.model_: TorchModel | None = None
        self.pruned_: list[int] = []

    def fit(self, model: Any, x: Any, y: Any) -> FinePruning:
        """Repair ``model`` with clean data held in memory (shuffled minibatches when fine-tuning)."""
        model = torch_model(model, self.name)
        xs = as_inputs(model, x, self.name)
        ys = torch.as_tensor(np.asarray(y.cpu() if isinstance(y, Tensor) else y), dtype=torch.long).to(model.device)
        if ys.shape != (xs.shape[0],):
            raise InputError(f"{self.name}: labels have shape {tuple(ys.shape)}, expected ({xs.shape[0]},)")
        gen = torch.Generator().manual_seed(self.seed)

        def batches() -> Iterable[Batch]:
            order = torch.randperm(xs.shape[0], generator=gen).to(xs.device)
            return [
                (xs[order[i : i + self.batch_size]], ys[order[i : i + self.batch_size]])
                for i in range(0, xs.shape[0], self.batch_size)
            ]

        return self.fit_stream(model, batches)

    def fit_stream(self, model: Any, batches: BatchFactory) -> FinePruning:
        """Repair ``model`` with clean data streamed in batches (see the class docstring for the passes)."""
        model = torch_model(model, self.name)
        repaired = copy.deepcopy(model)
        layer = prunable_layer(repaired.module)
        units = layer.out_channels if isinstance(layer, nn.Conv2d) else layer.out_features
        order = np.argsort(self._activity(repaired, layer, batches), kind="stable")
        self._original = {
            a: getattr(layer, a).detach().clone() for a in ("weight", "bias") if getattr(layer, a) is not None
        }
        self.accuracy_before_ = self._accuracy(repaired, batches)
        if self.prune_fraction is not None:
            k = max(1, int(round(self.prune_fraction * units)))
        else:
            k = self._search(repaired, layer, order, batches, units)
        self._mask(layer, order[:k])
        self.pruned_ = sorted(int(i) for i in order[:k])
        self.accuracy_pruned_ = self._accuracy(repaired, batches)
        self._fine_tune(repaired, batches)
        prune.remove(layer, "weight")
        if layer.bias is not None:
            prune.remove(layer, "bias")
        self.accuracy_after_ = self._accuracy(repaired, batches)
        self.model_ = repaired
        return self

    def _activity(self, model: TorchModel, layer: nn.Module, batches: BatchFactory) -> np.ndarray:
        total: Tensor | None = None
        seen = 0

        def hook(_m: nn.Module, _args: Any, out: Tensor) -> None:
            nonlocal total, seen
            dims = [0, *range(2, out.ndim)]
            s = (
                out.detach().clamp_min(0).mean(dim=dims[1:]).sum(dim=0)
                if out.ndim > 2
                else out.detach().clamp_min(0).sum(dim=0)
            )
            total = s if total is None else total + s
            seen += out.shape[0]

        handle = layer.register_forward_hook(hook)
        try:
            with torch.no_grad():
                for xb, _ in batches():
                    model.logits(as_inputs(model, xb, self.name))
        finally:
            handle.remove()
        if total is None:
            raise InputError(f"{self.name}: the clean data stream is empty")
        return (total / seen).double().cpu().numpy()

    def _accuracy(self, model: TorchModel, batches: BatchFactory) -> float:
        right = n = 0
        for xb, yb in batches():
            pred = model.predict(as_inputs(model, xb, self.name))
            right += int((pred.cpu() == torch.as_tensor(np.asarray(yb.cpu() if isinstance(yb, Tensor) else yb))).sum())
            n += int(pred.shape[0])
        return right / n if n else 0.0

    def _mask(self, layer: nn.Conv2d | nn.Linear, units: np.ndarray) -> None:
        """Zero ``units`` (and only them) of the layer's original weights through a pruning mask."""
        for attr in ("weight", "bias"):
            if getattr(layer, attr, None) is None:
                continue
            if hasattr(layer, f"{attr}_mask"):
                prune.remove(layer, attr)
                with torch.no_grad():
                    getattr(layer, attr).copy_(self._original[attr])
            current = getattr(layer, attr)
            mask = torch.ones_like(current)
            mask[torch.as_tensor(units, dtype=torch.long)] = 0
            prune.custom_from_mask(layer, attr, mask)

    def _search(
        self, model: TorchModel, layer: nn.Conv2d | nn.Linear, order: np.ndarray, batches: BatchFactory, units: int
    ) -> int:
        """The most units prunable with clean accuracy within ``max_accuracy_drop`` (bisection)."""
        floor = self.accuracy_before_ - self.max_accuracy_drop
        lo, hi = 0, units - 1  # pruning every unit is never kept
        while lo < hi:
            mid = (lo + hi + 1) // 2
            self._mask(layer, order[:mid])
            if self._accuracy(model, batches) >= floor:
                lo = mid
            else:
                hi = mid - 1
        return max(lo, 1)

    def _fine_tune(self, model: TorchModel, batches: BatchFactory) -> None:
        params = [p for p in model.module.parameters()]
        for p in params:
            p.requires_grad_(True)
        opt = torch.optim.Adam(params, lr=self.lr)
        model.module.train()
        try:
            for _ in range(self.epochs):
                for xb, yb in batches():
                    xs = as_inputs(model, xb, self.name)
                    ys = torch.as_tensor(np.asarray(yb.cpu() if isinstance(yb, Tensor) else yb), dtype=torch.long).to(
                        xs.device
                    )
                    opt.zero_grad(set_to_none=True)
                    nn.functional.cross_entropy(model.logits(xs), ys).backward()
                    opt.step()
        finally:
            model.module.eval()
            for p in params:
                p.requires_grad_(False)


__all__ = ["FinePruning", "prunable_layer"]
