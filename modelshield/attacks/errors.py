"""Why an attack does not apply to a model: typed, so an assessment can report it and go on."""

from __future__ import annotations

from modelshield.core.errors import CapabilityError


class GradientUnavailableError(CapabilityError):
    """A white-box attack was asked to run on a model whose input gradients are missing or useless.

    Raised before any work by :meth:`Attack.run <modelshield.attacks.base.Attack.run>` (and by a
    gradient step that finds the scores detached): the model is black-box, its scores do not
    depend differentiably on the input (argmax/one-hot outputs, ``torch.no_grad`` or ``detach``
    in ``forward``), or every probed gradient is zero or not finite (input quantisation with
    ``round``, step functions). White-box robustness is then unknown; black-box attacks still apply.
    """

    hint = (
        "white-box robustness is unknown: use black-box attacks (square, hopskipjump) or expose a differentiable model"
    )
