"""Robust training: adversarial training, TRADES, fast/free adversarial training, defensive distillation.

Every method is configured once and fitted on a :class:`~modelshield.core.model.TorchModel`
and a :class:`~modelshield.core.datasets.Dataset`; the network is trained in place::

    from modelshield.defenses.training import PGDTraining, TrainConfig

    result = PGDTraining(eps=0.1, steps=7).fit(model, train, TrainConfig(epochs=20, patience=5))
    result.history[-1].robust_accuracy   # validation PGD accuracy after the last epoch

One loop (:mod:`.loop`) runs them all: device-resident data, validation robust accuracy each
epoch, early stopping, rich progress bars and pickle-free checkpoints that resume exactly.
"""

from __future__ import annotations

from modelshield.defenses.training.adversarial import FastTraining, PGDTraining, StandardTraining
from modelshield.defenses.training.config import TrainConfig
from modelshield.defenses.training.distillation import Distillation
from modelshield.defenses.training.evaluation import accuracies
from modelshield.defenses.training.free import FreeTraining
from modelshield.defenses.training.history import EpochRecord, TrainResult
from modelshield.defenses.training.methods import METHODS, make_trainer
from modelshield.defenses.training.step import Step, frozen
from modelshield.defenses.training.trades import TRADES
from modelshield.defenses.training.trainer import Trainer

__all__ = [
    "METHODS",
    "TRADES",
    "Distillation",
    "EpochRecord",
    "FastTraining",
    "FreeTraining",
    "PGDTraining",
    "StandardTraining",
    "Step",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "accuracies",
    "frozen",
    "make_trainer",
]
