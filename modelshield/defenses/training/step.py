"""What one minibatch of robust training may do, shared by the loop and every method.

During a run the network is in train mode with trainable parameters; inner maximisations run
inside :func:`frozen`, which switches to eval mode and freezes the parameters, as the
attacks expect (and as TRADES' reference code crafts its examples).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor

from modelshield.core.model import TorchModel


@contextmanager
def frozen(model: TorchModel) -> Iterator[TorchModel]:
    """Eval mode and frozen parameters for an inner maximisation; train mode again afterwards."""
    params = list(model.module.parameters())
    model.module.eval()
    for p in params:
        p.requires_grad_(False)
    try:
        yield model
    finally:
        for p in params:
            p.requires_grad_(True)
        model.module.train()


class Step:
    """What a method may do to the network in one minibatch: read the model, update the weights."""

    def __init__(self, model: TorchModel, optimizer: torch.optim.Optimizer) -> None:
        self.model = model
        self.optimizer = optimizer

    def update(self, loss: Tensor) -> None:
        """One optimiser step on ``loss`` (a scalar); gradients of other leaves are kept for the caller."""
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()


__all__ = ["Step", "frozen"]
