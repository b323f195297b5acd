"""Carlini & Wagner's L2 attack: minimum-norm adversarials by optimisation in tanh space."""

from __future__ import annotations

import torch
from torch import Tensor

from modelshield.attacks.base import Attack, Outcome
from modelshield.attacks.evasion._common import batch_view, check_count, check_positive
from modelshield.attacks.gradients import require_graph
from modelshield.attacks.losses import is_adversarial, margin
from modelshield.attacks.noise import SampleNoise
from modelshield.core.model import Model

_UNSET = 1e10  # "no upper bound on c found yet" in the binary search


class CarliniWagnerL2(Attack):
    """Carlini–Wagner L2: minimise ``||δ||₂² + c · f(x + δ)`` with Adam in tanh space.

    Carlini, Wagner, "Towards Evaluating the Robustness of Neural Networks", IEEE S&P 2017,
    https://arxiv.org/abs/1608.04644.

    The change of variables ``x' = lo + (hi − lo)(tanh(w) + 1)/2`` keeps every iterate inside the
    model's bounds ``(lo, hi)``. ``f`` is the margin loss ``max(z_y − max_{j≠y} z_j, −kappa)``
    (for targets: ``max(max_{j≠t} z_j − z_t, −kappa)``). An outer binary search on ``c`` runs
    per sample: ``c`` shrinks after a success and grows (×10 until an upper bound is known)
    after a failure. The smallest-L2 successful point over all searches is kept.

    Args:
        c: initial trade-off constant (default 1.0).
        kappa: confidence margin required of a success (default 0.0).
        steps: Adam steps per binary-search step (default 100); stops early when the
            objective stops decreasing.
        lr: Adam learning rate (default 0.01).
        binary_search_steps: rounds of the search on ``c`` (default 5).
        targeted: ``y`` holds target labels (default False).

    Minimum-norm attack (``minimal = True``): output of the same shape, dtype and device as
    ``x``, inside the bounds; the input unchanged where no adversarial was found.

    Example::

        x_adv = CarliniWagnerL2(steps=200)(model, x, y)
        l2 = (x_adv - x).flatten(1).norm(dim=1)
    """

    name = "cw-l2"
    norm = "l2"
    minimal = True

    def __init__(
        self,
        c: float = 1.0,
        *,
        kappa: float = 0.0,
        steps: int = 100,
        lr: float = 0.01,
        binary_search_steps: int = 5,
        targeted: bool = False,
    ) -> None:
        self.c = check_positive("c", c)
        self.kappa = check_positive("kappa", kappa, allow_zero=True)
        self.steps = check_count("steps", steps)
        self.lr = check_positive("lr", lr)
        self.binary_search_steps = check_count("binary_search_steps", binary_search_steps)
        self.targeted = bool(targeted)

    def _attack(self, model: Model, x: Tensor, y: Tensor, noise: SampleNoise) -> Outcome:
        lo, hi = model.bounds
        w0 = torch.atanh(((x - lo) / (hi - lo) * 2 - 1).clamp(-1 + 1e-6, 1 - 1e-6))

        n = x.shape[0]
        c = torch.full((n,), self.c, device=x.device, dtype=x.dtype)
        c_low, c_high = torch.zeros_like(c), torch.full_like(c, _UNSET)
        best_l2 = torch.full_like(c, float("inf"))
        best = x.clone()
        for _ in range(self.binary_search_steps):
            x_run, l2_run, ok_run = self._optimise(model, x, y, w0, c, lo, hi)
            improved = ok_run & (l2_run < best_l2)
            best = torch.where(batch_view(improved, x), x_run, best)
            best_l2 = torch.where(improved, l2_run, best_l2)
            # Binary search on c per sample: tighten after success, loosen after failure.
            c_high = torch.where(ok_run, torch.minimum(c_high, c), c_high)
            c_low = torch.where(ok_run, c_low, torch.maximum(c_low, c))
            bracketed = c_high < _UNSET
            c = torch.where(bracketed, (c_low + c_high) / 2, c * 10)
        return Outcome(best, torch.isfinite(best_l2))

    def _optimise(
        self, model: Model, x: Tensor, y: Tensor, w0: Tensor, c: Tensor, lo: float, hi: float
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Adam on w for a fixed c; returns each sample's smallest-L2 success (or x), L2 and flag.

        Every ``steps // 10`` steps, a sample whose objective fell by less than 0.01 % stops
        (the paper's early abort, taken per sample so that other samples in the batch don't matter).
        Only the model's scores go through autograd: the gradient of ``||x' − x||²`` and of the tanh
        change of variables are written out, so each step costs one forward and one backward of the
        model plus a few passes over the batch.
        """
        w = w0.clone()
        adam = _Adam(w, self.lr)
        best_l2 = torch.full_like(c, float("inf"))
        best = x.clone()
        prev = torch.full_like(c, float("inf"))
        running = torch.ones_like(c, dtype=torch.bool)
        all_running = True
        check_every = max(self.steps // 10, 1)
        for step in range(self.steps):
            t = torch.tanh(w)
            x_new = _from_tanh(t, lo, hi).requires_grad_(True)
            logits = model.logits(x_new)
            require_graph(logits, model)
            f = self._f(logits, y)
            scaled = c * f
            (grad,) = torch.autograd.grad((scaled if all_running else scaled[running]).sum(), x_new)
            with torch.no_grad():
                x_new = x_new.detach()
                d = x_new - x
                l2sq = d.flatten(1).pow(2).sum(dim=1)
                objective = l2sq + scaled.detach()
                # ∂/∂x' of ||x' − x||² + c·f is 2(x' − x) + c·∂f/∂x'; halved (exactly) before the chain rule's (hi − lo)/2.
                grad = grad.div_(2).add_(d)
                if hi - lo != 1:
                    grad.mul_(hi - lo)
                adam.step(torch.ops.aten.tanh_backward(grad, t), None if all_running else running)
                ok = self._succeeded(logits.detach(), y) & running
                l2 = l2sq.sqrt()
                better = ok & (l2 < best_l2)
                if bool(better.any()):
                    best[better] = x_new[better]
                    best_l2 = torch.where(better, l2, best_l2)
                if (step + 1) % check_every == 0:
                    running &= objective <= prev * 0.9999
                    prev = torch.where(running, objective, prev)
                    all_running = bool(running.all())
                    if not bool(running.any()):
                        break
        return best, best_l2, torch.isfinite(best_l2)

    def _f(self, logits: Tensor, y: Tensor) -> Tensor:
        """Margin objective, clipped at −kappa: ≤ 0 exactly when the attack has succeeded."""
        m = -margin(logits, y) if not self.targeted else margin(logits, y)
        return m.clamp(min=-self.kappa)

    def _succeeded(self, logits: Tensor, y: Tensor) -> Tensor:
        """Success with confidence: the winning margin is at least ``kappa``."""
        if self.kappa == 0:
            return is_adversarial(logits, y, self.targeted)
        return self._f(logits, y) <= -self.kappa


def _from_tanh(t: Tensor, lo: float, hi: float) -> Tensor:
    """``lo + (hi − lo)(t + 1)/2`` for ``t = tanh(w)``; the scale and shift are skipped where they are 1 and 0."""
    out = t.add(1)
    if hi - lo != 1:
        out.mul_(hi - lo)
    out.div_(2)
    return out.add_(lo) if lo != 0 else out


class _Adam:
    """``torch.optim.Adam`` (Kingma & Ba, https://arxiv.org/abs/1412.6980) on one tensor, fed its gradient directly.

    Each row is one sample's variables; rows where ``running`` is False keep their values (their moments
    still decay, which no later step reads). The fused kernel, where torch has one for the device, does an
    update in one pass over the batch instead of seven.
    """

    def __init__(self, w: Tensor, lr: float) -> None:
        self.w = w
        self.opt = torch.optim.Adam([w], lr=lr, fused=True if w.device.type in ("cpu", "cuda") else None)

    def step(self, grad: Tensor, running: Tensor | None) -> None:
        """One update with ``grad``; rows where ``running`` is False (when given) stay where they are."""
        self.w.grad = grad
        if running is None:
            self.opt.step()
            return
        stopped = torch.nonzero(~running).squeeze(1)
        kept = self.w[stopped]
        self.opt.step()
        self.w[stopped] = kept
