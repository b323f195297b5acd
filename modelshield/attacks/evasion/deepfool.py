"""DeepFool (Moosavi-Dezfooli et al. 2016): minimal L2 steps to the nearest linearised boundary."""

from __future__ import annotations

import torch
from torch import Tensor

from modelshield.attacks.base import Attack, Outcome
from modelshield.attacks.evasion._common import batch_view, check_count, check_positive, flat_norm
from modelshield.attacks.gradients import require_graph
from modelshield.attacks.losses import is_adversarial
from modelshield.attacks.noise import SampleNoise
from modelshield.core.model import Model


class DeepFool(Attack):
    """DeepFool, L2, batched over samples and candidate classes.

    Moosavi-Dezfooli, Fawzi, Frossard, "DeepFool: a simple and accurate method to fool deep
    neural networks", CVPR 2016, https://arxiv.org/abs/1511.04599.

    Algorithm 2 of the paper: at the current point, linearise ``f_k = z_k − z_y`` for the
    ``candidates − 1`` most likely other classes k, take the class whose linearised boundary is
    nearest, ``l = argmin_k |f_k| / ||∇f_k||``, and step exactly onto it,
    ``r = (|f_l| + 1e-4) / ||∇f_l||² · ∇f_l``. The accumulated step is scaled by
    ``1 + overshoot`` and clipped into the bounds. All samples and candidate gradients go
    through the model as one batch per step (the input is repeated once per candidate).

    Args:
        steps: maximum iterations (default 50).
        overshoot: relative overshoot applied to the total perturbation (default 0.02).
        candidates: number of top-scoring classes considered, the label included (default 10;
            capped at the number of classes).

    Minimum-norm attack (``minimal = True``): output of the same shape, dtype and device as
    ``x``, inside the bounds; the input unchanged where it fails (or is already misclassified).

    Example::

        x_adv = DeepFool()(model, x, y)
        l2 = (x_adv - x).flatten(1).norm(dim=1)
    """

    name = "deepfool"
    norm = "l2"
    minimal = True

    def __init__(self, steps: int = 50, *, overshoot: float = 0.02, candidates: int = 10) -> None:
        self.steps = check_count("steps", steps)
        self.overshoot = check_positive("overshoot", overshoot, allow_zero=True)
        self.candidates = check_count("candidates", candidates, minimum=2)

    def _attack(self, model: Model, x: Tensor, y: Tensor, noise: SampleNoise) -> Outcome:
        lo, hi = model.bounds
        k = min(self.candidates, model.num_classes)
        with torch.no_grad():
            scores = model.logits(x)
        # The k − 1 highest-scoring classes other than y, fixed from the clean input (as the paper).
        others = scores.scatter(1, y[:, None], float("-inf")).topk(k - 1, dim=1).indices

        x_adv = x.clone()
        r_total = torch.zeros_like(x)
        fooled = is_adversarial(scores, y, False)
        active = torch.nonzero(~fooled).squeeze(1)
        for _ in range(self.steps):
            if active.numel() == 0:
                break
            f, grads = self._linearise(model, x_adv[active], y[active], others[active])
            # Nearest linearised boundary per sample, then the exact step onto it.
            gnorm = flat_norm(grads.flatten(0, 1)).view(f.shape) + 1e-8
            best = (f.abs() / gnorm).argmin(dim=1)
            rows = torch.arange(active.numel(), device=x.device)
            f_l, g_l, n_l = f[rows, best], grads[rows, best], gnorm[rows, best]
            r_total[active] += batch_view((f_l.abs() + 1e-4) / n_l.pow(2), g_l) * g_l
            x_adv[active] = (x[active] + (1 + self.overshoot) * r_total[active]).clamp(lo, hi)
            with torch.no_grad():
                hit = is_adversarial(model.logits(x_adv[active]), y[active], False)
            fooled[active] = hit
            active = active[~hit]
        return Outcome(x_adv, fooled)

    @staticmethod
    def _linearise(model: Model, x: Tensor, y: Tensor, others: Tensor) -> tuple[Tensor, Tensor]:
        """``f_k = z_k − z_y`` (n, k−1) and their input gradients (n, k−1, ...) in one batch."""
        n, m = others.shape
        xr = x.unsqueeze(1).expand(n, m, *x.shape[1:]).reshape(n * m, *x.shape[1:]).requires_grad_(True)
        z = model.logits(xr)
        require_graph(z, model)
        f = z.gather(1, others.reshape(-1, 1)).squeeze(1) - z.gather(1, y.repeat_interleave(m)[:, None]).squeeze(1)
        (g,) = torch.autograd.grad(f.sum(), xr)
        return f.detach().view(n, m), g.view(n, m, *x.shape[1:])
