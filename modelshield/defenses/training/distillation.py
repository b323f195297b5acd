"""Defensive distillation (Papernot et al. 2016): a student trained on a hot teacher's soft labels."""

from __future__ import annotations

import copy
from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import Tensor

from modelshield.attacks.evasion._common import check_count, check_positive
from modelshield.core.datasets import Dataset
from modelshield.core.model import TorchModel
from modelshield.defenses.training.adversarial import StandardTraining
from modelshield.defenses.training.config import TrainConfig
from modelshield.defenses.training.step import Step
from modelshield.defenses.training.trainer import Trainer


def _clone(model: TorchModel) -> TorchModel:
    """The same adapter (bounds, preprocessing, fast path) around a deep copy of the network."""
    twin = copy.copy(model)
    twin.module = copy.deepcopy(model.module)
    return twin


class Distillation(Trainer):
    """Defensive distillation.

    Papernot, McDaniel, Wu, Jha, Swami, "Distillation as a Defense to Adversarial Perturbations
    against Deep Neural Networks", IEEE S&P 2016, https://arxiv.org/abs/1511.04508.

    A teacher with the student's architecture is trained at temperature T (softmax of
    logits / T); the student is then trained at the same T on the teacher's soft labels and
    deployed at T = 1. Its logits grow by about T, saturating the softmax: cross-entropy
    gradients vanish, which stops gradient attacks on the loss but not attacks on the logits
    (Carlini & Wagner 2016). Evaluate it with a margin loss too (``assess`` runs C&W and APGD-DLR).

    Args:
        temperature: T (default 20; the paper uses 20–100).
        teacher: an already trained teacher to distil from; by default one is trained first,
            from a copy of the model, with the run's settings.
        teacher_epochs: epochs for that teacher (default: the run's epochs).
    """

    name = "distill"

    def __init__(
        self, *, temperature: float = 20.0, teacher: TorchModel | None = None, teacher_epochs: int | None = None
    ) -> None:
        self.temperature = check_positive("temperature", temperature)
        self.teacher_epochs = None if teacher_epochs is None else check_count("teacher_epochs", teacher_epochs)
        self._given = teacher is not None
        self._teacher = teacher

    def prepare(self, model: TorchModel, train: Dataset, config: TrainConfig) -> None:
        if self._given:
            return
        teacher = _clone(model)
        teacher_cfg = replace(
            config,
            epochs=self.teacher_epochs or config.epochs,
            val_fraction=0.0,
            patience=None,
            checkpoint_dir=None,
            resume=False,
        )
        StandardTraining(temperature=self.temperature).fit(teacher, train, teacher_cfg)
        self._teacher = teacher

    def state_tensors(self) -> dict[str, Tensor]:
        if self._teacher is None:
            return {}
        return {f"teacher.{k}": v for k, v in self._teacher.module.state_dict().items()}

    def load_state_tensors(self, model: TorchModel, tensors: dict[str, Tensor]) -> None:
        if self._given:
            return
        teacher = _clone(model)
        teacher.module.load_state_dict({k[8:]: v for k, v in tensors.items() if k.startswith("teacher.")})
        teacher.module.eval()
        for p in teacher.module.parameters():
            p.requires_grad_(False)
        self._teacher = teacher

    @property
    def teacher(self) -> TorchModel | None:
        """The teacher distilled from (trained by ``fit`` unless one was given)."""
        return self._teacher

    def train_batch(self, step: Step, x: Tensor, y: Tensor) -> Tensor:
        assert self._teacher is not None
        with torch.no_grad():
            soft = torch.softmax(self._teacher.logits(x) / self.temperature, dim=1)
        log_p = F.log_softmax(step.model.logits(x) / self.temperature, dim=1)
        loss = -(soft * log_p).sum(dim=1).mean()
        step.update(loss)
        return loss.detach()
