"""The contract every adversarial-input detector keeps, scikit-learn style.

``__init__`` stores settings; ``fit(x, y)`` learns from clean data (returns ``self``);
``score(x)`` gives one number per input, higher meaning more likely adversarial;
``calibrate(x_clean, fpr)`` sets ``threshold_`` so that about ``fpr`` of clean inputs score above
it; ``flag(x)`` applies the threshold. ``score_tensor`` is the same score as a differentiable
tensor, which is what an adaptive attacker (and our evaluation of one) descends.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor

from modelshield.core.errors import CapabilityError, InputError
from modelshield.core.model import Model, TorchModel


def white_box(model: Model, detector: str) -> TorchModel:
    """Detectors that read gradients or activations need a PyTorch model."""
    if not isinstance(model, TorchModel):
        raise CapabilityError(f"the {detector} detector needs a white-box PyTorch model, got {type(model).__name__}")
    return model


class Detector(ABC):
    """Scores inputs by how adversarial they look; learns on clean data, calibrated to a false-positive rate."""

    name: ClassVar[str]
    #: needs adversarial examples to fit (a supervised detector such as LID)
    supervised: ClassVar[bool] = False

    def __init__(self, model: Model) -> None:
        self.model = model
        self.threshold_: float | None = None
        self.center_ = 0.0
        self.scale_ = 1.0
        self.fitted_ = False

    def fit(self, x: Tensor, y: Tensor, x_adv: Tensor | None = None) -> Detector:
        """Learn what clean inputs look like (and, for supervised detectors, adversarial ones)."""
        self.model.check_inputs(x, y)
        self._fit(
            x.to(self.model.device), y.to(self.model.device), None if x_adv is None else x_adv.to(self.model.device)
        )
        self.fitted_ = True
        return self

    def _fit(self, x: Tensor, y: Tensor, x_adv: Tensor | None) -> None:  # noqa: B027 - unsupervised detectors learn nothing
        """Detectors with parameters learn them here."""

    @abstractmethod
    def score_tensor(self, x: Tensor) -> Tensor:
        """Differentiable (N,) scores; higher means more likely adversarial."""

    def score(self, x: Tensor, batch_size: int = 512) -> np.ndarray:
        """Scores of ``x`` as a float64 array, computed in batches without keeping graphs."""
        if not self.fitted_:
            raise InputError(f"the {self.name} detector is not fitted: call fit(x, y) first")
        x = x.to(self.model.device)
        out = []
        for i in range(0, x.shape[0], batch_size):
            with torch.no_grad():
                out.append(self.score_tensor(x[i : i + batch_size]).detach().double().cpu())
        return torch.cat(out).numpy() if out else np.zeros(0)

    def calibrate(self, x_clean: Tensor, fpr: float = 0.05) -> Detector:
        """Set ``threshold_`` to the clean scores' (1 − fpr) quantile, and the scale adaptive attacks use."""
        if not 0 < fpr < 1:
            raise InputError(f"the target false-positive rate must be in (0, 1), got {fpr}")
        scores = self.score(x_clean)
        if scores.size < 2:
            raise InputError("calibration needs at least two clean inputs")
        self.threshold_ = float(np.quantile(scores, 1 - fpr, method="higher"))
        self.center_ = float(np.median(scores))
        self.scale_ = float(np.std(scores)) or 1.0
        return self

    def flag(self, x: Tensor) -> np.ndarray:
        """Boolean array: which inputs score above the calibrated threshold."""
        if self.threshold_ is None:
            raise InputError(f"the {self.name} detector has no threshold: call calibrate(x_clean, fpr) first")
        return self.score(x) > self.threshold_


__all__ = ["Detector", "white_box"]
