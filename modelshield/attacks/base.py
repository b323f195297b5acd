"""The contract every evasion attack keeps.

An attack is configured once and called on data: ``PGD(eps=8/255, steps=10)(model, x, y)``
returns adversarial inputs with the same shape, dtype and device as ``x``, inside the model's
``bounds``. Untargeted attacks take the true labels ``y``; with ``targeted=True``, ``y`` holds
the target labels. Fixed-budget attacks stay within ``eps`` in their norm; minimum-norm attacks
(``minimal = True``: C&W, DeepFool) look for the smallest perturbation and return the input
unchanged where they fail.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar, Literal

from torch import Tensor

from modelshield.core.model import Model

Norm = Literal["linf", "l2"]


class Attack(ABC):
    """Base class: a named attack in one norm, white- or black-box."""

    name: ClassVar[str]
    norm: Norm
    black_box: ClassVar[bool] = False
    minimal: ClassVar[bool] = False
    targeted: bool = False
    eps: float | None = None

    @abstractmethod
    def __call__(self, model: Model, x: Tensor, y: Tensor) -> Tensor:
        """Return adversarial examples for ``x`` (labels or targets ``y``)."""
