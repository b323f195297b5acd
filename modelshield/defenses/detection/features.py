"""Hidden activations of a PyTorch model, read with forward hooks during one ordinary forward.

Detectors look at the inputs of the model's dense layers: the last one's input is the
"penultimate feature" Mahalanobis scores; LID uses every one of them plus the logits. Reading
them through ``TorchModel.logits`` keeps the adapter's normalisation and fast path in effect.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from torch import Tensor, nn

from modelshield.core.errors import CapabilityError
from modelshield.core.model import TorchModel


def dense_layers(model: TorchModel) -> list[nn.Linear]:
    """The model's ``nn.Linear`` layers in registration order (usually forward order)."""
    layers = [m for m in model.module.modules() if isinstance(m, nn.Linear)]
    if not layers:
        raise CapabilityError("the model has no dense (nn.Linear) layer to read features from")
    return layers


def features_and_logits(model: TorchModel, x: Tensor, layers: Sequence[nn.Module]) -> tuple[list[Tensor], Tensor]:
    """The flattened inputs of ``layers`` and the logits, from one (differentiable) forward."""
    seen: dict[int, Tensor] = {}

    def keep(index: int) -> Callable[[nn.Module, tuple[Tensor, ...]], None]:
        def hook(_module: nn.Module, args: tuple[Tensor, ...]) -> None:
            seen[index] = args[0].flatten(1)

        return hook

    handles = [layer.register_forward_pre_hook(keep(i)) for i, layer in enumerate(layers)]
    try:
        logits = model.logits(x)
    finally:
        for handle in handles:
            handle.remove()
    return [seen[i].float() for i in range(len(layers))], logits


__all__ = ["dense_layers", "features_and_logits"]
