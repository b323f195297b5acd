"""Label-only membership inference: robustness to augmentation and noise (Choquette-Choo et al. 2021)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from modelshield.attacks.noise import SampleNoise
from modelshield.attacks.privacy._signals import check_labelled
from modelshield.attacks.privacy.base import MembershipAttack
from modelshield.core.errors import InputError
from modelshield.core.model import Model


class LabelOnly(MembershipAttack):
    """A sample is a member when the model's label survives perturbing it.

    Choquette-Choo, Tramèr, Carlini, Papernot, "Label-Only Membership Inference Attacks",
    ICML 2021, https://arxiv.org/abs/2007.14321.

    Training points sit further from the decision boundary, so their label is more robust. The
    attack asks only for labels: on the sample itself, on ``draws`` Gaussian-noise copies at each
    ``sigmas`` (as fractions of the model's input range; the paper's noise-robustness attack for
    non-image data), and for image inputs (N, C, H, W) on every translation by up to ``max_shift``
    pixels (the paper's augmentation attack). The score is the fraction of those queries labelled
    correctly. It works on any model that answers labels, including ``has_scores=False`` ones, and
    costs ``1 + len(sigmas)·draws (+ shifts)`` queries per sample.
    """

    name = "label-only"

    def __init__(
        self,
        *,
        sigmas: Sequence[float] = (0.02, 0.05, 0.1, 0.2),
        draws: int = 8,
        max_shift: int = 1,
        seed: int = 0,
    ) -> None:
        self.sigmas = tuple(float(s) for s in sigmas)
        if any(not s > 0 for s in self.sigmas):
            raise InputError(f"noise sigmas must be positive fractions of the input range, got {list(sigmas)}")
        if isinstance(draws, bool) or not isinstance(draws, int) or draws < 0:
            raise InputError(f"draws must be an integer ≥ 0, got {draws!r}")
        if isinstance(max_shift, bool) or not isinstance(max_shift, int) or max_shift < 0:
            raise InputError(f"max_shift must be an integer ≥ 0, got {max_shift!r}")
        self.draws, self.max_shift, self.seed = draws, max_shift, int(seed)

    def _variants(self, model: Model, x: Tensor) -> list[Tensor]:
        lo, hi = model.bounds
        noise = SampleNoise(self.seed, torch.arange(x.shape[0]), x.device)
        out = [x]
        for i, sigma in enumerate(self.sigmas):
            for d in range(self.draws):
                step = noise.keyed(i, d).normal(x.shape[1:]).to(x.dtype)
                out.append((x + sigma * (hi - lo) * step).clamp(lo, hi))
        if x.ndim == 4:
            for dy in range(-self.max_shift, self.max_shift + 1):
                for dx in range(-self.max_shift, self.max_shift + 1):
                    if dx or dy:
                        out.append(_shift(x, dy, dx, fill=lo))
        return out

    def scores(self, model: Model, x: Tensor, y: Tensor) -> np.ndarray:
        check_labelled(model, x, y)
        y = y.to(x.device)
        correct = torch.stack([(model.predict(v) == y).double() for v in self._variants(model, x)])
        return np.asarray(correct.mean(dim=0).cpu().numpy(), dtype=np.float64)


def _shift(x: Tensor, dy: int, dx: int, fill: float) -> Tensor:
    """Images translated by (dy, dx) pixels, the uncovered border filled with ``fill``."""
    out = torch.full_like(x, fill)
    h, w = x.shape[-2:]
    out[..., max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = x[
        ..., max(-dy, 0) : h + min(-dy, 0), max(-dx, 0) : w + min(-dx, 0)
    ]
    return out


__all__ = ["LabelOnly"]
