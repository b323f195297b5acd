"""Can gradient attacks use this model? One cheap probe before any work, instead of a crash mid-attack.

Gradient attacks on a model without usable input gradients either crash inside autograd (argmax
outputs, ``torch.no_grad`` or ``detach`` in ``forward``) or silently return the clean inputs
(``round`` quantisation: every gradient is zero), and the second reads as perfect robustness.
Both are caught here and raised as :class:`GradientUnavailableError`.
"""

from __future__ import annotations

import torch
from torch import Tensor

from modelshield.attacks.errors import GradientUnavailableError
from modelshield.attacks.losses import margin
from modelshield.core.model import Model

PROBE_SAMPLES = 16
"""Samples probed: one forward and one backward on this many inputs."""


def require_graph(scores: Tensor, model: Model) -> None:
    """Raise unless ``scores`` carry an autograd graph back to the input (a free check per step)."""
    if not scores.requires_grad:
        raise GradientUnavailableError(
            f"{type(model).__name__}'s scores carry no gradient: the forward pass is not differentiable "
            "(argmax or one-hot outputs, torch.no_grad or detach inside forward)"
        )


def probe_gradients(model: Model, x: Tensor, y: Tensor, samples: int = PROBE_SAMPLES) -> None:
    """Raise :class:`GradientUnavailableError` unless ``model`` gives finite, non-zero input gradients.

    The probe differentiates the margin ``max_{j≠y} z_j − z_y`` (not cross-entropy, whose gradient
    underflows to exactly zero on confidently classified samples) on the first ``samples`` inputs.
    """
    name = type(model).__name__
    if not model.white_box:
        raise GradientUnavailableError(f"{name} is a black-box model: it gives no input gradients")
    if x.shape[0] == 0:
        return
    xs = x[:samples].detach().clone().requires_grad_(True)
    scores = model.logits(xs)
    require_graph(scores, model)
    try:
        (grad,) = torch.autograd.grad(margin(scores, y[:samples]).sum(), xs, allow_unused=True)
    except RuntimeError as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise GradientUnavailableError(f"backpropagating through {name} failed: {reason}") from e
    if grad is None:
        raise GradientUnavailableError(f"{name}'s scores do not depend on its input through autograd")
    if not bool(torch.isfinite(grad).all()):
        raise GradientUnavailableError(f"{name} returns NaN or Inf input gradients")
    if not bool(grad.any()):
        raise GradientUnavailableError(
            f"{name}'s input gradient is exactly zero on all {xs.shape[0]} probed samples "
            "(input quantisation such as round(), or a step function): gradient attacks cannot move"
        )
