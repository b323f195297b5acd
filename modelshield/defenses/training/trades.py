"""TRADES (Zhang et al. 2019): trade clean accuracy for robustness with one explicit knob, β."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from modelshield.attacks.base import Norm
from modelshield.attacks.evasion import PGD
from modelshield.attacks.evasion._common import check_positive
from modelshield.defenses.training.step import Step, frozen
from modelshield.defenses.training.trainer import Trainer


def kl_to(reference: Tensor, logits: Tensor) -> Tensor:
    """Per-sample KL(reference ‖ softmax(logits)) for reference probabilities (N, C)."""
    return F.kl_div(F.log_softmax(logits, dim=1), reference, reduction="none").sum(dim=1)


class _KLFromClean:
    """The inner objective: divergence of the scores at x' from the clean prediction at x."""

    def __init__(self) -> None:
        self.reference: Tensor | None = None

    def __call__(self, logits: Tensor, y: Tensor) -> Tensor:
        assert self.reference is not None
        return kl_to(self.reference, logits)


class TRADES(Trainer):
    """TRADES: clean cross-entropy plus β times the divergence between clean and adversarial predictions.

    Zhang, Yu, Jiao, Xing, El Ghaoui, Jordan, "Theoretically Principled Trade-off between
    Robustness and Accuracy", ICML 2019, https://arxiv.org/abs/1901.08573.

    ``min_θ E[ CE(f(x), y) + β · max_{x' ∈ B_ε(x)} KL(f(x) ‖ f(x')) ]``. The inner maximum is
    PGD on the KL term (``steps`` steps of size ``alpha``; its start is uniform in the ε-ball
    where the reference code adds 0.001·N(0, I) — either only leaves the KL's stationary
    point at x). Larger β buys robustness with clean accuracy; the paper uses β = 6.

    Args:
        eps: perturbation budget in ``norm``, in the model's input units.
        beta: weight of the robustness term (default 6).
        steps: inner PGD steps (default 10).
        alpha: inner step size; default ``2.5 * eps / steps``.
        norm: ``"linf"`` (default) or ``"l2"``.
    """

    name = "trades"

    def __init__(
        self, eps: float, *, beta: float = 6.0, steps: int = 10, alpha: float | None = None, norm: Norm = "linf"
    ) -> None:
        self._objective = _KLFromClean()
        self._attack = PGD(eps, steps=steps, alpha=alpha, norm=norm, loss=self._objective)
        self.eps, self.steps, self.alpha, self.norm = self._attack.eps, self._attack.steps, self._attack.alpha, norm
        self.beta = check_positive("beta", beta, allow_zero=True)

    def train_batch(self, step: Step, x: Tensor, y: Tensor) -> Tensor:
        model = step.model
        with frozen(model), torch.no_grad():
            self._objective.reference = torch.softmax(model.logits(x), dim=1)
        with frozen(model):
            x_adv = self._attack(model, x, y)
        self._objective.reference = None
        logits = model.logits(x)
        loss = F.cross_entropy(logits, y) + self.beta * kl_to(torch.softmax(logits, dim=1), model.logits(x_adv)).mean()
        step.update(loss)
        return loss.detach()
