"""Per-sample attack objectives over class scores, pluggable by name or as a callable.

Every function here maps ``(logits, y) -> (N,)`` and is written so that an *untargeted* attack
ascends it: larger means "further from class ``y``". Targeted attacks (``y`` = target labels)
use :func:`resolve_loss` with ``targeted=True``, which returns an objective that also ascends
towards success (the negated loss, or the targeted DLR of Croce & Hein).

Scores may be logits or log-probabilities: every loss here depends only on differences between
scores of one sample, except cross-entropy, which is invariant to the shift either way.
"""

from __future__ import annotations

from collections.abc import Callable

import torch.nn.functional as F
from torch import Tensor

from modelshield.core.errors import InputError

LossFn = Callable[[Tensor, Tensor], Tensor]
LossSpec = str | LossFn

LOSS_NAMES = ("ce", "dlr", "margin")


def cross_entropy(logits: Tensor, y: Tensor) -> Tensor:
    """Per-sample cross-entropy of ``logits`` against labels ``y``."""
    return F.cross_entropy(logits, y, reduction="none")


def _label_and_best_other(logits: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """The score of class ``y`` and the largest score among the other classes."""
    z_y = logits.gather(1, y[:, None]).squeeze(1)
    others = logits.scatter(1, y[:, None], float("-inf"))
    return z_y, others.amax(dim=1)


def margin(logits: Tensor, y: Tensor) -> Tensor:
    """Carlini–Wagner margin ``max_{j≠y} z_j − z_y``: positive once ``y`` is no longer predicted."""
    z_y, z_other = _label_and_best_other(logits, y)
    return z_other - z_y


def dlr(logits: Tensor, y: Tensor) -> Tensor:
    """Difference of Logits Ratio (Croce & Hein 2020, eq. 6), untargeted.

    ``−(z_y − max_{j≠y} z_j) / (z_π1 − z_π3)`` with π the scores sorted in decreasing order;
    invariant to shifting and rescaling the scores. Needs at least three classes.
    """
    srt = logits.sort(dim=1, descending=True).values
    return margin(logits, y) / (srt[:, 0] - srt[:, 2] + 1e-12)


def dlr_targeted(logits: Tensor, target: Tensor) -> Tensor:
    """Targeted DLR (Croce & Hein 2020, eq. 7), ascended towards the target class.

    ``−(max_{j≠t} z_j − z_t) / (z_π1 − (z_π3 + z_π4)/2)``. The paper's numerator uses the true
    label; without it, the strongest non-target class stands in. Needs at least four classes.
    """
    srt = logits.sort(dim=1, descending=True).values
    return -margin(logits, target) / (srt[:, 0] - 0.5 * (srt[:, 2] + srt[:, 3]) + 1e-12)


_BY_NAME: dict[str, LossFn] = {"ce": cross_entropy, "dlr": dlr, "margin": margin}


def check_loss(loss: LossSpec) -> None:
    """Raise :class:`InputError` unless ``loss`` is a known name or a callable."""
    if callable(loss):
        return
    if not isinstance(loss, str) or loss not in _BY_NAME:
        raise InputError(f"unknown loss {loss!r}; choose one of {', '.join(LOSS_NAMES)} or pass a callable")


def resolve_loss(loss: LossSpec, targeted: bool) -> LossFn:
    """The per-sample objective an attack ascends, for a loss name or callable.

    A callable ``(logits, y) -> (N,)`` follows the convention of the built-ins: an untargeted
    attack maximises it, a targeted one minimises it (so it is negated here).
    """
    check_loss(loss)
    if targeted and loss == "dlr":
        return dlr_targeted
    fn = loss if callable(loss) else _BY_NAME[loss]
    if not targeted:
        return fn

    def negated(logits: Tensor, y: Tensor) -> Tensor:
        return -fn(logits, y)

    return negated


def is_adversarial(scores: Tensor, y: Tensor, targeted: bool) -> Tensor:
    """Boolean (N,): predicted class differs from ``y`` (untargeted) or equals it (targeted); a label of −1
    (an abstention: a guard that withheld the answer) is never adversarial."""
    pred = scores.argmax(dim=1) if scores.ndim == 2 else scores
    return pred == y if targeted else (pred != y) & (pred >= 0)


__all__ = [
    "LOSS_NAMES",
    "LossFn",
    "LossSpec",
    "check_loss",
    "cross_entropy",
    "dlr",
    "dlr_targeted",
    "is_adversarial",
    "margin",
    "resolve_loss",
]
