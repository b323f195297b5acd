"""The contract every robust-training method keeps, and the helpers methods share.

A method is configured once (``PGDTraining(eps=0.3)``) and fitted on a model and data:
``PGDTraining(eps=0.3).fit(model, train, TrainConfig(epochs=10))``. The shared loop
(:mod:`.loop`) owns epochs, shuffling, validation, early stopping, checkpoints and progress; a
method only says what one minibatch does (:meth:`Trainer.train_batch`).

During a run the network is in train mode with trainable parameters; inner maximisations run
inside :func:`frozen`, which switches to eval mode and freezes the parameters, as the
attacks expect (and as TRADES' reference code crafts its examples).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import Tensor

from modelshield.core.datasets import Dataset
from modelshield.core.model import TorchModel

if TYPE_CHECKING:
    from modelshield.defenses.training.config import TrainConfig
    from modelshield.defenses.training.history import TrainResult


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


class Trainer(ABC):
    """Base class of robust-training methods: one minibatch rule plus optional state."""

    name: ClassVar[str]
    eps: float | None = None

    @abstractmethod
    def train_batch(self, step: Step, x: Tensor, y: Tensor) -> Tensor:
        """Update the network on one minibatch; return the detached training loss (a scalar)."""

    def params(self) -> dict[str, Any]:
        """The method's parameters, recorded in the history and checked when resuming."""
        return {k: v for k, v in vars(self).items() if not k.startswith("_") and isinstance(v, (int, float, str))}

    def prepare(self, model: TorchModel, train: Dataset, config: TrainConfig) -> None:  # noqa: B027
        """Work done once before the first epoch (a teacher to train, buffers to size); not on resume."""

    def state_tensors(self) -> dict[str, Tensor]:
        """Tensors the method carries across minibatches, saved in checkpoints."""
        return {}

    def load_state_tensors(self, model: TorchModel, tensors: dict[str, Tensor]) -> None:  # noqa: B027
        """Restore what :meth:`state_tensors` saved, for a run on ``model`` that resumes."""

    def fit(
        self,
        model: TorchModel,
        train: Dataset,
        config: TrainConfig | None = None,
        *,
        validation: Dataset | None = None,
    ) -> TrainResult:
        """Train ``model``'s network in place with this method; returns the per-epoch history."""
        from modelshield.defenses.training.loop import run_training

        return run_training(self, model, train, config, validation=validation)
