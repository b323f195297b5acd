"""The base of fixed-budget white-box attacks (FGSM, PGD, APGD): parameters, gradients, restarts."""

from __future__ import annotations

from abc import abstractmethod

import torch
from torch import Tensor

from modelshield.attacks.base import Attack, Norm, Outcome
from modelshield.attacks.evasion._common import check_norm, check_positive
from modelshield.attacks.gradients import require_graph
from modelshield.attacks.losses import LossFn, LossSpec, check_loss, is_adversarial, resolve_loss
from modelshield.attacks.streams import SampleRNG
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

    def _attack(self, model: Model, x: Tensor, y: Tensor, rng: SampleRNG) -> Outcome:
        objective = self._objective()
        x_adv, claimed = self._run(model, x, y, objective, rng)
        if self.restarts == 1:
            return Outcome(x_adv, claimed)
        # Later restarts attack only the samples not fooled yet, each continuing its own random
        # stream; a sample keeps its first adversarial, one never fooled keeps the last run's result.
        claimed = self._claims(model, x_adv, y) if claimed is None else claimed
        todo = torch.nonzero(~claimed).squeeze(1)
        for _ in range(self.restarts - 1):
            if todo.numel() == 0:
                break
            cand, hit = self._run(model, x[todo], y[todo], objective, rng.rows(todo))
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
        self, model: Model, x: Tensor, y: Tensor, objective: LossFn, rng: SampleRNG
    ) -> tuple[Tensor, Tensor | None]:
        """One run on ``x`` (labels or targets ``y``) ascending ``objective``: the points and, if tracked, their success."""
