"""The base of fixed-budget white-box attacks (FGSM, PGD, APGD): parameters, gradients, restarts."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from modelshield.attacks.base import Attack, Norm
from modelshield.attacks.evasion._common import check_norm, check_positive, generator
from modelshield.attacks.losses import LossFn, LossSpec, check_loss, is_adversarial, resolve_loss
from modelshield.core.model import Model

RunOnce = Callable[[Tensor, Tensor, "torch.Generator | None"], Tensor]


class GradientAttack(Attack):
    """An ε-bounded attack that ascends a pluggable loss with input gradients."""

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

    def _with_restarts(self, model: Model, x: Tensor, y: Tensor, restarts: int, run_once: RunOnce) -> Tensor:
        """Run ``run_once`` up to ``restarts`` times; each sample keeps its first adversarial.

        Later restarts only attack the samples earlier ones did not fool; a sample never fooled
        keeps the result of the last restart.
        """
        gen = generator(self.seed, x.device)
        x_adv = run_once(x, y, gen)
        if restarts == 1:
            return x_adv
        todo = torch.nonzero(~is_adversarial(model.predict(x_adv), y, self.targeted)).squeeze(1)
        for _ in range(restarts - 1):
            if todo.numel() == 0:
                break
            cand = run_once(x[todo], y[todo], gen)
            x_adv[todo] = cand
            todo = todo[~is_adversarial(model.predict(cand), y[todo], self.targeted)]
        return x_adv
