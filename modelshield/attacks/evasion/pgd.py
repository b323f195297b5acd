"""Projected Gradient Descent (Madry et al. 2018) and its one-step special case, FGSM."""

from __future__ import annotations

from torch import Tensor

from modelshield.attacks.base import Norm
from modelshield.attacks.evasion._common import check_count, check_positive
from modelshield.attacks.evasion._gradient import GradientAttack
from modelshield.attacks.evasion._norms import make_ball
from modelshield.attacks.losses import LossFn, LossSpec
from modelshield.attacks.noise import SampleNoise
from modelshield.core.model import Model


class PGD(GradientAttack):
    """Projected Gradient Descent, L∞ or L2.

    Madry, Makelov, Schmidt, Tsipras, Vladu, "Towards Deep Learning Models Resistant to
    Adversarial Attacks", ICLR 2018, https://arxiv.org/abs/1706.06083.

    From a random point of the ε-ball, take ``steps`` steps of size ``alpha`` along the
    steepest-ascent direction of the loss (the gradient's sign for L∞, the normalised gradient
    for L2), projecting back into the ε-ball and the model's bounds after each.

    Args:
        eps: perturbation budget in ``norm`` (≥ 0), in the model's input units.
        steps: gradient steps per restart (default 10).
        alpha: step size; default ``2.5 * eps / steps``.
        norm: ``"linf"`` (default) or ``"l2"``.
        random_start: start uniformly inside the ε-ball (default True) instead of at ``x``.
        restarts: independent runs; each sample keeps its first adversarial (default 1).
        loss: ``"ce"`` (default), ``"dlr"``, ``"margin"`` or a callable ``(logits, y) -> (N,)``
            that an untargeted attack maximises (see :mod:`modelshield.attacks.losses`).
        targeted: ``y`` holds target labels and the attack moves towards them (default False).
        seed: seed for the random starts, drawn per sample index (default None: one seed drawn
            from torch's global RNG per call).

    Input ``x`` (N, ...) inside ``model.bounds`` with labels ``y`` (N,); output of the same
    shape, dtype and device, within ``eps`` of ``x`` and inside the bounds.

    Example::

        x_adv = PGD(eps=0.3, steps=20)(model, x, y)
        robust_acc = (model.predict(x_adv) == y).float().mean()
    """

    name = "pgd"

    def __init__(
        self,
        eps: float,
        *,
        steps: int = 10,
        alpha: float | None = None,
        norm: Norm = "linf",
        random_start: bool = True,
        restarts: int = 1,
        loss: LossSpec = "ce",
        targeted: bool = False,
        seed: int | None = None,
    ) -> None:
        super().__init__(eps, norm=norm, loss=loss, targeted=targeted, seed=seed)
        self.steps = check_count("steps", steps)
        self.alpha = 2.5 * self.eps / self.steps if alpha is None else check_positive("alpha", alpha, allow_zero=True)
        self.random_start = bool(random_start)
        self.restarts = check_count("restarts", restarts)

    def _run(self, model: Model, x: Tensor, y: Tensor, objective: LossFn, noise: SampleNoise) -> tuple[Tensor, None]:
        """One PGD run: the hot loop is one forward, one input-gradient and two in-place ops."""
        ball = make_ball(self.norm, x, self.eps, model.bounds)
        x_adv = ball.random_start(noise) if self.random_start else x.clone()
        for _ in range(self.steps):
            _, grad, _ = self._loss_and_grad(model, x_adv, y, objective)
            x_adv.add_(ball.direction(grad), alpha=self.alpha)
            ball.project_(x_adv)
        return x_adv, None


class FGSM(PGD):
    """Fast Gradient Sign Method (one step of size ``eps``), L∞ or L2 (the "fast gradient method").

    Goodfellow, Shlens, Szegedy, "Explaining and Harnessing Adversarial Examples", ICLR 2015,
    https://arxiv.org/abs/1412.6572.

    ``x_adv = clip(x + eps · sign(∇ₓ L(x, y)))`` for L∞; the L2 variant steps along the
    normalised gradient instead.

    Args:
        eps: perturbation budget in ``norm`` (≥ 0), in the model's input units.
        norm: ``"linf"`` (default) or ``"l2"``.
        loss: ``"ce"`` (default), ``"dlr"``, ``"margin"`` or a callable ``(logits, y) -> (N,)``.
        targeted: ``y`` holds target labels; step down the loss towards them (default False).

    Input ``x`` (N, ...) inside ``model.bounds`` with labels ``y`` (N,); output of the same
    shape, dtype and device, within ``eps`` of ``x`` and inside the bounds.

    Example::

        x_adv = FGSM(eps=0.1)(model, x, y)
        robust_acc = (model.predict(x_adv) == y).float().mean()
    """

    name = "fgsm"

    def __init__(self, eps: float, *, norm: Norm = "linf", loss: LossSpec = "ce", targeted: bool = False) -> None:
        super().__init__(eps, steps=1, alpha=eps, norm=norm, random_start=False, loss=loss, targeted=targeted)
