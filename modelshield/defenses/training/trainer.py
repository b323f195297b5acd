"""The contract every robust-training method keeps, and the helpers methods share.

A method is configured once (``PGDTraining(eps=0.3)``) and fitted on a model and data:
``PGDTraining(eps=0.3).fit(model, train, TrainConfig(epochs=10))``. The shared loop
(:mod:`.loop`) owns epochs, shuffling, validation, early stopping, checkpoints and progress; a
method only says what one minibatch does (:meth:`Trainer.train_batch`).

What a method may do in one minibatch (:class:`~.step.Step`) and how it runs an inner maximisation
(:func:`~.step.frozen`) live in :mod:`.step`, which the loop uses too.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar

from torch import Tensor

from modelshield.core.datasets import Dataset
from modelshield.core.model import TorchModel
from modelshield.defenses.training.loop import run_training
from modelshield.defenses.training.step import Step

if TYPE_CHECKING:
    from modelshield.defenses.training.config import TrainConfig
    from modelshield.defenses.training.history import TrainResult
    from modelshield.defenses.training.loop import DataObserver


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
        data_observer: DataObserver | None = None,
    ) -> TrainResult:
        """Train ``model``'s network in place with this method; returns the per-epoch history.

        ``data_observer`` (a data-access monitor) is told every batch the loop reads.
        """
        return run_training(self, model, train, config, validation=validation, data_observer=data_observer)
