"""Auto-PGD (Croce & Hein 2020): PGD with momentum and a budget-aware step-size schedule."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from modelshield.attacks.base import Norm
from modelshield.attacks.evasion._common import batch_view, check_count, check_fraction, copy_rows_
from modelshield.attacks.evasion._gradient import GradientAttack
from modelshield.attacks.evasion._norms import make_ball
from modelshield.attacks.losses import LossFn, LossSpec, is_adversarial
from modelshield.attacks.noise import SampleNoise
from modelshield.core.model import Model

MOMENTUM = 0.75


def checkpoints(steps: int) -> list[int]:
    """Iterations ``w_j = ⌈p_j · steps⌉`` where APGD may halve its step size.

    ``p_0 = 0, p_1 = 0.22, p_{j+1} = p_j + max(p_j − p_{j−1} − 0.03, 0.06)`` (Croce & Hein, §3.2).
    """
    p_prev, p = 0.0, 0.22
    out: list[int] = []
    while p <= 1.0:
        w = math.ceil(p * steps)
        if 0 < w <= steps and (not out or w > out[-1]):
            out.append(w)
        p_prev, p = p, p + max(p - p_prev - 0.03, 0.06)
    return out


class APGD(GradientAttack):
    """Auto-PGD with cross-entropy or DLR loss, L∞ or L2 (AutoAttack's APGD-CE / APGD-DLR).

    Croce, Hein, "Reliable evaluation of adversarial robustness with an ensemble of diverse
    parameter-free attacks", ICML 2020, https://arxiv.org/abs/2003.01690.

    Algorithm 1 of the paper: a gradient step of size η (initially 2ε) is mixed with the previous
    update (momentum 0.75) and projected. At checkpoints ``w_j`` each sample's η is halved, and
    the sample restarts from its best point so far, when fewer than a fraction ``rho`` of the
    steps since the last checkpoint increased the loss, or when η was not halved at the last
    checkpoint and the best loss has not improved since.

    Args:
        eps: perturbation budget in ``norm`` (≥ 0), in the model's input units.
        norm: ``"linf"`` (default) or ``"l2"``.
        steps: iterations per restart (default 100).
        loss: ``"ce"`` (default), ``"dlr"`` (scale-invariant; needs ≥ 3 classes, 4 targeted),
            ``"margin"`` or a callable ``(logits, y) -> (N,)`` that an untargeted attack maximises.
        restarts: random restarts; each sample keeps its first adversarial (default 1).
        rho: fraction of improving steps below which η is halved (default 0.75).
        targeted: ``y`` holds target labels (default False).
        seed: seed for the random starts, drawn per sample index (default None: one seed drawn
            from torch's global RNG per call).

    ``name`` is ``"apgd-ce"``, ``"apgd-dlr"``, ``"apgd-margin"`` or ``"apgd"`` for a callable.
    Input ``x`` (N, ...) inside ``model.bounds`` with labels ``y`` (N,); output of the same
    shape, dtype and device, within ``eps`` of ``x`` and inside the bounds: the adversarial
    found for a sample, else its highest-loss point.

    Example::

        x_adv = APGD(eps=0.3, loss="dlr")(model, x, y)
        robust_acc = (model.predict(x_adv) == y).float().mean()
    """

    name = "apgd"

    def __init__(
        self,
        eps: float,
        *,
        norm: Norm = "linf",
        steps: int = 100,
        loss: LossSpec = "ce",
        restarts: int = 1,
        rho: float = 0.75,
        targeted: bool = False,
        seed: int | None = None,
    ) -> None:
        super().__init__(eps, norm=norm, loss=loss, targeted=targeted, seed=seed)
        self.steps = check_count("steps", steps)
        self.restarts = check_count("restarts", restarts)
        self.rho = check_fraction("rho", rho)
        self.name = f"apgd-{loss}" if isinstance(loss, str) else "apgd"  # type: ignore[misc]

    def _run(self, model: Model, x: Tensor, y: Tensor, objective: LossFn, noise: SampleNoise) -> tuple[Tensor, Tensor]:
        ball = make_ball(self.norm, x, self.eps, model.bounds)
        x_adv = ball.random_start(noise)
        loss, grad, logits = self._loss_and_grad(model, x_adv, y, objective)
        found = is_adversarial(logits, y, self.targeted)
        x_found = x_adv.clone()
        x_best, grad_best, loss_best = x_adv.clone(), grad.clone(), loss.clone()

        eta = batch_view(torch.full_like(loss, 2 * self.eps), x)
        x_prev = x_adv
        ckpts, last_ckpt = set(checkpoints(self.steps)), 0
        n_increase = torch.zeros_like(loss)
        best_at_ckpt, halved_at_ckpt = loss_best.clone(), torch.ones_like(found)
        for k in range(self.steps):
            # Momentum step (Alg. 1, lines 6-7): z = P(x + η·dir(∇)); x' = P(x + α(z − x) + (1 − α)(x − x_prev)),
            # computed in place: z in the gradient's buffer (dir(∇) is not needed after it), x − x_prev in x_prev's.
            z = ball.project_(ball.direction(grad).mul_(eta).add_(x_adv))
            if k > 0:
                z.sub_(x_adv).mul_(MOMENTUM).add_(x_adv)
                z = ball.project_(z.add_(torch.sub(x_adv, x_prev, out=x_prev).mul_(1 - MOMENTUM)))
            x_prev, x_adv = x_adv, z

            loss_prev = loss
            loss, grad, logits = self._loss_and_grad(model, x_adv, y, objective)
            adv = is_adversarial(logits, y, self.targeted)
            copy_rows_(x_found, x_adv, adv)
            found |= adv
            n_increase += loss > loss_prev
            better = loss > loss_best
            copy_rows_(x_best, x_adv, better)
            copy_rows_(grad_best, grad, better)
            loss_best = torch.where(better, loss, loss_best)

            if k + 1 in ckpts:  # checkpoint w_j (Alg. 1, lines 11-13)
                few_gains = n_increase < self.rho * (k + 1 - last_ckpt)
                stalled = ~halved_at_ckpt & (best_at_ckpt >= loss_best)
                halve = few_gains | stalled
                eta = torch.where(batch_view(halve, x), eta / 2, eta)
                x_adv = torch.where(batch_view(halve, x), x_best, x_adv)
                grad = torch.where(batch_view(halve, x), grad_best, grad)
                halved_at_ckpt, best_at_ckpt = halve, loss_best.clone()
                n_increase.zero_()
                last_ckpt = k + 1
        return torch.where(batch_view(found, x), x_found, x_best), found
