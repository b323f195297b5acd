"""Output-only detectors: the energy score and the max-softmax baseline.

Liu, Wang, Owens, Li, "Energy-based Out-of-distribution Detection", NeurIPS 2020,
https://arxiv.org/abs/2010.03759: ``E(x) = −T · logsumexp(z / T)`` is lower on the data the
model was trained on. Hendrycks & Gimpel 2017 (https://arxiv.org/abs/1610.02136): the maximum
softmax probability is lower off-distribution. Both need only scores, so they also work on
black-box models, and both are easy to evade: attacks that push to a confident wrong class
look *more* normal to them. They are the baseline a stronger detector must beat.
"""

from __future__ import annotations

import torch
from torch import Tensor

from modelshield.core.errors import InputError
from modelshield.core.model import Model
from modelshield.defenses.detection.base import Detector


class EnergyDetector(Detector):
    """Score = energy ``−T · logsumexp(logits / T)``: high energy, unlike the training data."""

    name = "energy"

    def __init__(self, model: Model, temperature: float = 1.0) -> None:
        super().__init__(model)
        if not temperature > 0:
            raise InputError(f"temperature must be positive, got {temperature}")
        self.temperature = float(temperature)

    def score_tensor(self, x: Tensor) -> Tensor:
        return -self.temperature * torch.logsumexp(self.model.logits(x) / self.temperature, dim=1)


class MaxSoftmaxDetector(Detector):
    """Score = −max softmax probability: unconfident predictions are suspicious."""

    name = "max-softmax"

    def score_tensor(self, x: Tensor) -> Tensor:
        return -torch.softmax(self.model.logits(x), dim=1).amax(dim=1)


__all__ = ["EnergyDetector", "MaxSoftmaxDetector"]
