"""The networks an attacker trains as the stolen model; importable by name so a saved copy can be rebuilt.

``arch`` strings (``modelshield.attacks.extraction.substitutes:MLP``) and keyword arguments go with the
safetensors file, so ``read_model(path, arch=..., arch_kwargs=...)`` loads the stolen model back.
"""

from __future__ import annotations

from collections.abc import Sequence
from math import prod
from typing import Any

import torch
from torch import Tensor, nn


class MLP(nn.Module):
    """A ReLU multilayer perceptron over flattened inputs: a substitute that needs no knowledge of the victim."""

    def __init__(self, input_shape: Sequence[int], num_classes: int, hidden: Sequence[int] = (256, 128)) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width = prod(input_shape)
        for h in hidden:
            layers += [nn.Linear(width, int(h)), nn.ReLU()]
            width = int(h)
        layers.append(nn.Linear(width, num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class LinearSoftmax(nn.Module):
    """Multinomial logistic regression, ``logits = W·flatten(x) + b``: what equation solving recovers."""

    def __init__(self, input_shape: Sequence[int], num_classes: int) -> None:
        super().__init__()
        self.linear = nn.Linear(prod(input_shape), num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(torch.flatten(x, 1))


def arch_of(net: nn.Module, **kwargs: Any) -> dict[str, Any]:
    """The ``arch``/``arch_kwargs`` pair that rebuilds ``net``'s class (for the saved stolen model)."""
    cls = type(net)
    return {"arch": f"{cls.__module__}:{cls.__qualname__}", "arch_kwargs": kwargs}
