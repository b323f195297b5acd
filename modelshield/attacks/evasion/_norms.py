"""What differs by norm, in one place: the ε-ball around clean inputs, intersected with the box.

A :class:`Ball` knows its steepest-ascent direction (sign for L∞, normalised gradient for L2),
how to draw a random start inside it, and how to project a point back into it and into the
model's bounds. Projections run in place so attack loops allocate as little as possible.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import Tensor

from modelshield.attacks.evasion._common import batch_view, check_norm, flat_norm
from modelshield.attacks.noise import SampleNoise


class Ball(ABC):
    """The set ``{x' : ||x' − x|| ≤ eps, lo ≤ x' ≤ hi}`` for a batch of centres ``x``."""

    def __init__(self, center: Tensor, eps: float, bounds: tuple[float, float]) -> None:
        self.center = center
        self.eps = float(eps)
        self.lo, self.hi = float(bounds[0]), float(bounds[1])

    @staticmethod
    @abstractmethod
    def norm(v: Tensor) -> Tensor:
        """Per-sample size of perturbations ``v``: (N, ...) -> (N,)."""

    @staticmethod
    @abstractmethod
    def direction(g: Tensor) -> Tensor:
        """The unit-norm steepest-ascent direction for gradient ``g`` (may overwrite ``g``)."""

    @abstractmethod
    def project_(self, x_adv: Tensor) -> Tensor:
        """Move ``x_adv`` into the ball and the box, in place; returns it."""

    @abstractmethod
    def _random_delta(self, noise: SampleNoise) -> Tensor:
        """A random perturbation inside the ε-ball (before clipping to the box), row i from sample i's noise."""

    def random_start(self, noise: SampleNoise) -> Tensor:
        """A random point of the ball, clipped into the box; each from its own sample's noise."""
        return (self.center + self._random_delta(noise)).clamp_(self.lo, self.hi)


class LinfBall(Ball):
    """L∞ ball: the ball ∩ box is itself a box, so projection is a single clamp."""

    def __init__(self, center: Tensor, eps: float, bounds: tuple[float, float]) -> None:
        super().__init__(center, eps, bounds)
        self._low = (center - self.eps).clamp_(min=self.lo)
        self._high = (center + self.eps).clamp_(max=self.hi)

    @staticmethod
    def norm(v: Tensor) -> Tensor:
        return v.flatten(1).abs().amax(dim=1)

    @staticmethod
    def direction(g: Tensor) -> Tensor:
        return g.sign_()

    def project_(self, x_adv: Tensor) -> Tensor:
        return torch.clamp(x_adv, self._low, self._high, out=x_adv)

    def _random_delta(self, noise: SampleNoise) -> Tensor:
        u = noise.uniform(self.center.shape[1:], dtype=self.center.dtype)
        return u.mul_(2 * self.eps).sub_(self.eps)


class L2Ball(Ball):
    """L2 ball: rescale the perturbation onto the sphere when outside, then clip to the box.

    Clipping to the box after the rescale never leaves the ball: the centre lies in the box, so
    clipping only moves coordinates towards it.
    """

    @staticmethod
    def norm(v: Tensor) -> Tensor:
        return flat_norm(v)

    @staticmethod
    def direction(g: Tensor) -> Tensor:
        return g.div_(batch_view(flat_norm(g), g).add_(1e-12))

    def project_(self, x_adv: Tensor) -> Tensor:
        x_adv.sub_(self.center)
        scale = (self.eps / (flat_norm(x_adv) + 1e-12)).clamp_(max=1.0)
        x_adv.mul_(batch_view(scale, x_adv)).add_(self.center)
        return x_adv.clamp_(self.lo, self.hi)

    def _random_delta(self, noise: SampleNoise) -> Tensor:
        x = self.center
        d = x[0].numel()
        v = noise.normal(x.shape[1:], dtype=x.dtype)
        u = noise.uniform((), dtype=x.dtype)
        radius = self.eps * u.pow(1.0 / d)  # uniform in the ball, not on its surface
        return v.mul_(batch_view(radius / (flat_norm(v) + 1e-12), v))


def make_ball(norm: str, center: Tensor, eps: float, bounds: tuple[float, float]) -> Ball:
    """The ball for ``norm`` ("linf" or "l2") around ``center``."""
    return ball_class(norm)(center, eps, bounds)


def ball_class(norm: str) -> type[Ball]:
    """The :class:`Ball` subclass for ``norm``, for its static ``norm``/``direction``."""
    return {"linf": LinfBall, "l2": L2Ball}[check_norm(norm)]
