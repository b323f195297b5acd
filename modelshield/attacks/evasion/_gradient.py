"""The base of fixed-budget white-box attacks (FGSM, PGD, APGD): parameters, gradients, restarts."""

from __future__ import annotations

from abc import abstractmethod

import torch
from torch import Tensor

from modelshield.attacks.base import Attack, Norm
from modelshield.attacks.evasion._common import check_norm, check_positive, generator
from modelshield.attacks.losses import LossFn, LossSpec, check_loss, is_adversarial, resolve_loss
from modelshield.core.model import Model


class GradientAttack(Attack):
    """An ε-bounded attack that ascends a pluggable loss with input gradients.

    Subclasses implement one run from a random start (``_run``); this class checks inputs and
    repeats the run ``restarts`` times on the samples not yet fooled.
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
        loss = objective(logits, y)
        (grad,) = torch.autograd.grad(loss.sum(), x_adv)
        x_adv.requires_grad_(False)
        return loss.detach(), grad, logits.detach()

    def __call__(self, model: Model, x: Tensor, y: Tensor) -> Tensor:
        model.check_inputs(x, y)
        x = x.detach()
        objective = self._objective()
        gen = generator(self.seed, x.device)
        x_adv = self._run(model, x, y, objective, gen)
        if self.restarts == 1:
            return x_adv
        # Later restarts attack only the samples not fooled yet; each keeps its first adversarial,
        # a sample never fooled keeps the last run's result.
        todo = torch.nonzero(~is_adversarial(model.predict(x_adv), y, self.targeted)).squeeze(1)
        for _ in range(self.restarts - 1):
            if todo.numel() == 0:
                break
            cand = self._run(model, x[todo], y[todo], objective, gen)
            x_adv[todo] = cand
            todo = todo[~is_adversarial(model.predict(cand), y[todo], self.targeted)]
        return x_adv

    @abstractmethod
    def _run(self, model: Model, x: Tensor, y: Tensor, objective: LossFn, gen: torch.Generator | None) -> Tensor:
        """One run of the attack on ``x`` (labels or targets ``y``), ascending ``objective``."""
