"""A torch classifier's penultimate-layer activations: the input of its last linear layer.

Spectral signatures and activation clustering read the representation the classifier's final
layer separates classes by; a backdoor shows there as a direction (or a cluster) of its own.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from modelshield.core.errors import CapabilityError, InputError
from modelshield.core.model import Model, TorchModel
from modelshield.defenses.poisoning._data import as_labels
from modelshield.defenses.poisoning.base import PoisonDetector


def torch_model(model: Any, who: str) -> TorchModel:
    """The white-box model a detector reads activations of (an ``nn.Module`` must come wrapped)."""
    if isinstance(model, TorchModel):
        return model
    raise CapabilityError(
        f"{who} reads a network's activations: pass a TorchModel "
        f"(modelshield.core.model.TorchModel(module, input_shape=..., num_classes=...)), got {type(model).__name__}"
    )


def last_linear(module: nn.Module, who: str) -> nn.Linear:
    """The network's last ``nn.Linear`` in registration order (its classification layer)."""
    linears = [m for m in module.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise CapabilityError(f"{who}: the network has no nn.Linear layer to read penultimate activations at")
    return linears[-1]


def as_inputs(model: Model, x: Any, who: str) -> Tensor:
    """Inputs as a float32 tensor on the model's device, shaped as the model expects."""
    t = x if isinstance(x, Tensor) else torch.from_numpy(np.ascontiguousarray(np.asarray(x, dtype=np.float32)))
    t = t.to(model.device, torch.float32)
    if t.ndim < 2 or t[0].numel() != int(np.prod(model.input_shape)):
        raise InputError(f"{who}: inputs of shape {tuple(t.shape)} do not fit the model's input {model.input_shape}")
    return t.reshape(t.shape[0], *model.input_shape)


def penultimate(model: TorchModel, x: Any, who: str, batch_size: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """(N, d) float64 activations entering the last linear layer, and the (N, classes) logits."""
    xs = as_inputs(model, x, who)
    layer = last_linear(model.module, who)
    seen: list[Tensor] = []
    handle = layer.register_forward_pre_hook(lambda _m, args: seen.append(args[0].detach().flatten(1)))
    logits = []
    try:
        with torch.no_grad():
            for i in range(0, xs.shape[0], batch_size):
                logits.append(model.logits(xs[i : i + batch_size]))
    finally:
        handle.remove()
    if not seen:
        return np.zeros((0, layer.in_features)), np.zeros((0, model.num_classes))
    return torch.cat(seen).double().cpu().numpy(), torch.cat(logits).double().cpu().numpy()


class ActivationDetector(PoisonDetector):
    """A per-class detector on a torch model's penultimate activations (labels needed).

    ``fit_predict`` computes the activations of its data once and reuses them for every pass and for
    the verdict (the passes of ``fit_stream`` read each batch afresh).
    """

    needs_labels = True

    def __init__(self, model: Any, batch_size: int) -> None:
        super().__init__()
        self.model = torch_model(model, self.name)
        self.batch_size = batch_size
        self._memo: tuple[Any, Any, tuple[np.ndarray, np.ndarray]] | None = None

    def _acts(self, x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
        if self._memo is not None and self._memo[0] is x and self._memo[1] is y:
            return self._memo[2]
        acts, _ = penultimate(self.model, x, self.name, self.batch_size)
        return acts, as_labels(y, acts.shape[0], self.name)

    def fit_predict(self, x: Any, y: Any = None) -> np.ndarray:
        self._check_labels(y)
        self._memo = (x, y, self._acts(x, y))
        try:
            return super().fit_predict(x, y)
        finally:
            self._memo = None
