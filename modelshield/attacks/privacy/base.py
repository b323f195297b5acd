"""What every membership-inference attack looks like: a score per sample, higher meaning member."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import numpy as np
from numpy.typing import ArrayLike
from torch import Tensor

from modelshield.attacks.privacy.metrics import RocSummary, roc_summary
from modelshield.core.model import Model


class MembershipAttack(ABC):
    """A membership-inference attack: ``scores(model, x, y)`` ranks samples by how likely each was trained on.

    Scores are only meaningful as a ranking (the ROC curve sweeps every threshold); ``evaluate``
    scores members and non-members together and summarises the ROC curve.
    """

    name: ClassVar[str]

    @abstractmethod
    def scores(self, model: Model, x: Tensor, y: Tensor) -> np.ndarray:
        """(N,) float64 membership scores for labelled samples ``x``, ``y``; higher = more likely a member."""

    def evaluate(self, model: Model, x: Tensor, y: Tensor, is_member: ArrayLike) -> RocSummary:
        """Score ``x`` and summarise the ROC curve against the known membership."""
        return roc_summary(self.scores(model, x, y), is_member)


__all__ = ["MembershipAttack"]
