"""An attacker who knows the detector: PGD on a combined objective (Carlini & Wagner 2017).

Carlini, Wagner, "Adversarial Examples Are Not Easily Detected: Bypassing Ten Detection
Methods", AISec 2017, https://arxiv.org/abs/1705.07263. The attack ascends

    min(margin(z, y), κ) − λ · max((s(x) − m) / (τ − m), 0)

where ``margin`` is the C&W margin (positive once misclassified) and ``s`` the detector's
differentiable score, rescaled so that the clean median ``m`` is 0 and the calibrated threshold
``τ`` (5% FPR) is 1. Both terms are hinged, as in C&W's combined objective: once the input is
misclassified with room κ every step goes into looking clean, and once it scores like a
typical clean input every step goes back into misclassification. The right λ differs by
detector and input, so, like C&W's search over their constant, the attack runs once per λ in
``weights`` and keeps, per input, the misclassified result with the lowest detector score. Non-differentiable
parts of a detector (rounding in feature squeezing) use straight-through gradients (BPDA).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from modelshield.attacks.base import Attack, Norm
from modelshield.attacks.evasion import PGD
from modelshield.attacks.losses import margin
from modelshield.core.errors import InputError
from modelshield.core.model import Model
from modelshield.defenses.detection.base import Detector


class _WithDetectorScore(Model):
    """The model's logits with the detector's standardised score appended as one extra column."""

    white_box = True

    def __init__(self, model: Model, detector: Detector) -> None:
        super().__init__()
        self.inner, self.detector = model, detector
        self.input_shape, self.bounds, self.device = model.input_shape, model.bounds, model.device
        self.num_classes = model.num_classes + 1

    def _scores(self, x: Tensor) -> Tensor:
        logits = self.inner.logits(x)
        d = self.detector
        if d.threshold_ is None:
            raise InputError(f"calibrate the {d.name} detector before attacking it adaptively")
        score = (d.score_tensor(x) - d.center_) / max(d.threshold_ - d.center_, 1e-12)
        return torch.cat([logits, score[:, None]], dim=1)


class AdaptivePGD(Attack):
    """PGD against model and detector at once; see the module docstring for the objective.

    Args:
        detector: a fitted, calibrated detector (calibration supplies m and τ).
        eps: perturbation budget; steps: PGD steps (default 40); norm: "linf" or "l2".
        weights: the values of λ tried (default 0.01, 0.1, 1); kappa: margin cap κ (default 2.0).
        seed: seed for the random start.
    """

    name = "adaptive-pgd"
    eps: float

    def __init__(
        self,
        detector: Detector,
        eps: float,
        *,
        steps: int = 40,
        norm: Norm = "linf",
        weights: tuple[float, ...] = (0.01, 0.1, 1.0),
        kappa: float = 2.0,
        seed: int | None = 0,
    ) -> None:
        self.detector = detector
        self.eps = float(eps)
        self.norm = norm
        self.steps = steps
        self.weights = tuple(float(w) for w in weights)
        self.kappa = float(kappa)
        self.seed = seed

    def _objective(self, weight: float) -> Callable[[Tensor, Tensor], Tensor]:
        def objective(scores: Tensor, y: Tensor) -> Tensor:
            return margin(scores[:, :-1], y).clamp_max(self.kappa) - weight * scores[:, -1].clamp_min(0.0)

        return objective

    def __call__(self, model: Model, x: Tensor, y: Tensor) -> Tensor:
        combined = _WithDetectorScore(model, self.detector)
        best, best_key = x.clone(), torch.full((x.shape[0],), float("inf"), device=x.device)
        for weight in self.weights:
            pgd = PGD(eps=self.eps, steps=self.steps, norm=self.norm, loss=self._objective(weight), seed=self.seed)
            x_adv = pgd(combined, x, y)
            with torch.no_grad():
                fooled = model.predict(x_adv) != y
                score = self.detector.score_tensor(x_adv)
            # misclassified results rank first (by score), then the rest (by score, offset)
            key = torch.where(fooled, score, score.abs() + 1e30)
            better = key < best_key
            best[better], best_key[better] = x_adv[better], key[better]
        return best


__all__ = ["AdaptivePGD"]
