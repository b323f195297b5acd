"""Model inversion (MI-Face) and a per-feature reconstruction-risk estimate from the output's sensitivity."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from modelshield.attacks.gradients import probe_gradients
from modelshield.attacks.privacy._signals import log_probs
from modelshield.core.errors import InputError
from modelshield.core.model import Model


@dataclass(frozen=True)
class InversionResult:
    """Reconstructed class representatives and the model's confidence in their class before and after."""

    x: Tensor
    classes: Tensor
    confidence_before: np.ndarray
    confidence_after: np.ndarray
    steps: np.ndarray


class MIFace:
    """Reconstruct what a model associates with a class by gradient descent on 1 − p_class(x).

    Fredrikson, Jha, Ristenpart, "Model Inversion Attacks that Exploit Confidence Information and
    Basic Countermeasures", CCS 2015, https://doi.org/10.1145/2810103.2813677.

    From a start point (default: the middle of the input box; the paper starts from zeros), descend
    the cost ``1 − p_c(x)``, keep ``x`` inside the model's bounds (the paper's Process step), and stop
    a sample when its cost fails to improve for ``patience`` steps or drops below ``tolerance``. Each
    step moves ``lr`` (a fraction of the input range, in L2) along the cost's gradient direction,
    taken from ``log p_c``: ∇(1 − p_c) = −p_c·∇log p_c has the same direction but vanishes where the
    class starts improbable, which stalls the paper's fixed-size step on a confident network. A model whose classes are single people's faces yields
    recognisable faces; on a model with many samples per class the result is a class average, which
    is still what an attacker learns about the training data. Needs input gradients (a white-box model).
    """

    def __init__(self, *, steps: int = 500, lr: float = 0.1, patience: int = 50, tolerance: float = 1e-3) -> None:
        for name, value in (("steps", steps), ("patience", patience)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InputError(f"{name} must be an integer ≥ 1, got {value!r}")
        if not lr > 0 or not 0 <= tolerance < 1:
            raise InputError(f"lr must be positive and tolerance in [0, 1), got lr={lr}, tolerance={tolerance}")
        self.steps, self.lr, self.patience, self.tolerance = steps, float(lr), patience, float(tolerance)

    def invert(self, model: Model, classes: Tensor, x_init: Tensor | None = None) -> InversionResult:
        """One reconstruction per entry of ``classes`` (N,), from ``x_init`` (N, ...) or the box's middle."""
        classes = torch.as_tensor(classes, dtype=torch.long).reshape(-1).to(model.device)
        lo, hi = model.bounds
        if x_init is None:
            x_init = torch.full((classes.shape[0], *model.input_shape), (lo + hi) / 2, device=model.device)
        model.check_inputs(x_init, classes)
        probe_gradients(model, x_init, classes)
        x = x_init.detach().clone()
        best_x, best_cost = x.clone(), torch.full((x.shape[0],), float("inf"), device=x.device)
        stale = torch.zeros(x.shape[0], dtype=torch.long, device=x.device)
        steps = torch.zeros(x.shape[0], dtype=torch.long, device=x.device)
        active = torch.ones(x.shape[0], dtype=torch.bool, device=x.device)
        for _ in range(self.steps):
            idx = active.nonzero().squeeze(1)
            if idx.numel() == 0:
                break
            xa = x[idx].requires_grad_(True)
            log_p = torch.log_softmax(model.logits(xa), dim=1).gather(1, classes[idx].unsqueeze(1)).squeeze(1)
            (grad,) = torch.autograd.grad(log_p.sum(), xa)
            cost = 1 - log_p.detach().exp()
            better = cost < best_cost[idx]
            best_x[idx[better]] = xa.detach()[better]
            stale[idx] = torch.where(better & (best_cost[idx] - cost > 1e-6), 0, stale[idx] + 1)
            best_cost[idx] = torch.minimum(best_cost[idx], cost)
            steps[idx] += 1
            norm = grad.reshape(grad.shape[0], -1).norm(dim=1).clamp_min(1e-12).reshape(-1, *[1] * (grad.ndim - 1))
            x[idx] = (xa.detach() + self.lr * (hi - lo) * grad / norm).clamp(lo, hi)
            active[idx] = (stale[idx] < self.patience) & (best_cost[idx] > self.tolerance)
        with torch.no_grad():
            final = torch.softmax(model.logits(best_x), dim=1).gather(1, classes.unsqueeze(1)).squeeze(1)
            before = torch.softmax(model.logits(x_init), dim=1).gather(1, classes.unsqueeze(1)).squeeze(1)
        return InversionResult(best_x, classes, before.cpu().numpy(), final.cpu().numpy(), steps.cpu().numpy())


@dataclass(frozen=True)
class FeatureSensitivity:
    """How much each input feature moves the model's output: a per-feature reconstruction-risk estimate.

    ``sensitivity[j]`` is the mean total-variation change of the output distribution when feature
    ``j`` moves by ``step`` of the input range around each sample; ``share`` normalises it to sum to
    1. A feature the output barely depends on cannot be recovered from the output (by inversion or
    attribute inference); a feature that dominates it can: rank features by ``share`` in a threat model.
    """

    sensitivity: np.ndarray
    share: np.ndarray
    step: float

    def ranking(self) -> np.ndarray:
        """Feature indices from the most to the least exposed."""
        return np.argsort(-self.sensitivity, kind="stable")


def feature_sensitivity(model: Model, x: Tensor, *, step: float = 0.05) -> FeatureSensitivity:
    """Central differences of the output probabilities along each feature, averaged over the samples ``x``.

    Needs scores but no gradients, so it measures black-box models (scikit-learn, ONNX, HTTP) too:
    2·features queries per sample.
    """
    if not 0 < step <= 0.5:
        raise InputError(f"step is a fraction of the input range in (0, 0.5], got {step}")
    model.check_inputs(x)
    lo, hi = model.bounds
    flat = x.reshape(x.shape[0], -1)
    h = step * (hi - lo)
    out = np.empty(flat.shape[1])
    for j in range(flat.shape[1]):
        up, down = flat.clone(), flat.clone()
        up[:, j] = (up[:, j] + h).clamp(lo, hi)
        down[:, j] = (down[:, j] - h).clamp(lo, hi)
        width = (up[:, j] - down[:, j]).double().cpu().numpy()
        p_up = log_probs(model, up.reshape(x.shape)).exp().numpy()
        p_down = log_probs(model, down.reshape(x.shape)).exp().numpy()
        tv = 0.5 * np.abs(p_up - p_down).sum(axis=1)
        # per unit of input range moved, then scaled back to one full step (features at a bound move less)
        out[j] = float(np.mean(np.where(width > 0, tv / np.maximum(width, 1e-12), 0.0))) * 2 * h
    total = out.sum()
    share = out / total if total > 0 else np.full_like(out, 1.0 / out.size)
    return FeatureSensitivity(out, share, step)


__all__ = ["FeatureSensitivity", "InversionResult", "MIFace", "feature_sensitivity"]
