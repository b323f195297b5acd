"""The base of fixed-budget white-box attacks (FGSM, PGD, APGD): parameters, gradients, restarts."""

from __future__ import annotations

from abc import abstractmethod

import torch
from torch import Tensor

from modelshield.attacks.base import Attack, Norm, Outcome
from modelshield.attacks.evasion._common import check_norm, check_positive
from modelshield.attacks.gradients import require_graph
from modelshield.attacks.losses import LossFn, LossSpec, check_loss, is_adversarial, resolve_loss
from modelshield.attacks.noise import SampleNoise
from modelshield.core.model import Model


class GradientAttack(Attack):
    """An ε-bounded attack that ascends a pluggable loss with input gradients.

    Subclasses implement one run from a random start (``_run``); this class repeats it
    ``restarts`` times on the samples not yet fooled.
    """

    eps: float
    restarts: int = 1

    def __init__(self, eps: float, *, norm: Norm, loss: LossSpec, targeted: bool, seed: int | None = None) -> None:
        self.eps = check_positive("eps", eps, allow_zero=True)
        self.norm = check_norm(norm)  # type: ignore[assignment]
        check_loss(loss)
        self.loss = loss
        self.targeted = bool(targeted)
        self.seed = seed

    def _objective(self) -> LossFn:
        return resolve_loss(self.loss, self.targeted)

    @staticmethod
    def _loss_and_grad(model: Model, x_adv: Tensor, y: Tensor, objective: LossFn) -> tuple[Tensor, Tensor, Tensor]:
        """Per-sample loss, its input gradient and the scores at ``x_adv`` (one forward/backward)."""
        x_adv.requires_grad_(True)
        logits = model.logits(x_adv)
        require_graph(logits, model)
        loss = objective(logits, y)
        (grad,) = torch.autograd.grad(loss.sum(), x_adv)
        x_adv.requires_grad_(False)
        return loss.detach(), grad, logits.detach()

    def _attack(self, model: Model, x: Tensor, y: Tensor, noise: SampleNoise) -> Outcome:
        objective = self._objective()
        x_adv, claimed = self._run(model, x, y, objective, noise.keyed(0))
        if self.restarts == 1:
            return Outcome(x_adv, claimed)
        # Later restarts attack only the samples not fooled yet, each with the noise keyed by its
        # index and the restart; a sample keeps its first adversarial, one never fooled the last run's.
        claimed = self._claims(model, x_adv, y) if claimed is None else claimed
        todo = torch.nonzero(~claimed).squeeze(1)
        for restart in range(1, self.restarts):
            if todo.numel() == 0:
                break
            cand, hit = self._run(model, x[todo], y[todo], objective, noise.rows(todo).keyed(restart))
            hit = self._claims(model, cand, y[todo]) if hit is None else hit
            x_adv[todo] = cand
            claimed[todo] = hit
            todo = todo[~hit]
        return Outcome(x_adv, claimed)

    def _claims(self, model: Model, x_adv: Tensor, y: Tensor) -> Tensor:
        """Which of ``x_adv`` the scores call adversarial (one forward, no gradient)."""
        with torch.no_grad():
            return is_adversarial(model.logits(x_adv), y, self.targeted)

    @abstractmethod
    def _run(
        self, model: Model, x: Tensor, y: Tensor, objective: LossFn, noise: SampleNoise
    ) -> tuple[Tensor, Tensor | None]:
        """One run on ``x`` (labels or targets ``y``) ascending ``objective``: the points and, if tracked, their success."""
