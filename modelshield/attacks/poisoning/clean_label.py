"""Clean-label poisoning: poisons keep their correct labels, so no label audit can find them.

Feature collision (Shafahi et al. 2018) aims at chosen test inputs (the victims): it takes
training images of the class the attacker wants the victims called (the bases) and nudges each,
by a small change to the eye, until a feature extractor sees it exactly where it sees the victim.
A model fine-tuned on those features then learns the victim's spot in feature space as the base
class. It is the attack on transfer learning: a shared pre-trained network whose last layer is
retrained on data the attacker can add to.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor

from modelshield.attacks.poisoning.base import PoisonAttack, PoisonResult, check_class, mask_of, poison_count
from modelshield.core.errors import InputError

Features = Callable[[Tensor], Tensor]


class FeatureCollision(PoisonAttack):
    """Feature-collision poisons ("Poison Frogs!") for a targeted, clean-label attack.

    Shafahi, Huang, Najibi, Suciu, Studer, Dumitras, Goldstein, "Poison Frogs! Targeted
    Clean-Label Poisoning Attacks on Neural Networks", NeurIPS 2018, https://arxiv.org/abs/1804.00792.

    For each victim ``t``, the ``round(rate * N) / M`` training rows of class ``target`` nearest to
    it in feature space are the bases ``b``; each poison solves
    ``min_p ||f(p) - f(t)||² + beta · ||p - b||²`` inside the data's bounds (Adam on the joint
    objective, where the paper alternates a gradient and a proximal step: same minimiser, fewer
    steps to tune). ``opacity`` > 0 first blends the victim into the base (the paper's
    "watermarking", needed when the whole network is retrained rather than its last layer).
    Labels are not changed.

    Args:
        features: the feature extractor the victim model builds on, a torch callable from inputs
            (N, ...) float32 to (N, D) features (e.g. a pre-trained network without its last layer).
        target: the class the victims are to be classified as (and the bases' class).
        victims: (M, ...) the test inputs to attack.
        rate: fraction of the training rows to turn into poisons, in (0, 1]; at least one per victim.
        beta: weight of staying close to the base (default 1.0; larger looks cleaner, collides less).
        steps: optimisation steps (default 300) at learning rate ``lr`` (default 0.01).
        opacity: share of the victim blended into each base first, in [0, 1) (default 0).
        bounds: the input box (default: the training data's min and max).
        seed: seed for torch during crafting.

    Inputs are numeric arrays shaped as ``features`` expects.
    """

    name = "feature-collision"

    def __init__(
        self,
        features: Features,
        target: int,
        victims: np.ndarray,
        rate: float,
        *,
        beta: float = 1.0,
        steps: int = 300,
        lr: float = 0.01,
        opacity: float = 0.0,
        bounds: tuple[float, float] | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(rate, seed=seed)
        if not callable(features):
            raise InputError("features must be a callable from inputs to feature vectors (a torch module)")
        self.features = features
        self.target = check_class(target)
        self.victims = np.asarray(victims)
        if self.victims.ndim < 2 or len(self.victims) == 0 or self.victims.dtype.kind not in "biuf":
            raise InputError(f"victims must be a numeric batch (M, ...) of test inputs, got shape {self.victims.shape}")
        for what, value in (("beta", beta), ("lr", lr)):
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise InputError(f"{what} must be a positive number, got {value!r}")
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise InputError(f"steps must be an integer ≥ 1, got {steps!r}")
        if isinstance(opacity, bool) or not isinstance(opacity, int | float) or not 0 <= opacity < 1:
            raise InputError(f"opacity must lie in [0, 1), got {opacity!r}")
        if bounds is not None and not bounds[0] < bounds[1]:
            raise InputError(f"bounds must be (low, high) with low < high, got {bounds!r}")
        self.beta, self.steps, self.lr, self.opacity, self.bounds = (
            float(beta),
            steps,
            float(lr),
            float(opacity),
            bounds,
        )

    def _poison(self, x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> PoisonResult:
        if x.dtype.kind not in "biuf" or x.shape[1:] != self.victims.shape[1:]:
            raise InputError(
                f"training inputs {x.shape[1:]} and victims {self.victims.shape[1:]} must be numeric and alike"
            )
        bases = np.flatnonzero(y == self.target)
        m = len(self.victims)
        k = poison_count(self.rate, len(y), len(bases), f"class {self.target}")
        if k < m:
            raise InputError(f"{m} victims need at least one poison each; a rate of {self.rate:g} gives {k}")
        lo, hi = self.bounds or (float(x.min()), float(x.max()))
        torch.manual_seed(self.seed)
        xt = torch.from_numpy(x.astype(np.float32))
        with torch.no_grad():
            f_bases = self._feats(xt[bases])
            f_victims = self._feats(torch.from_numpy(self.victims.astype(np.float32)))
        taken = np.zeros(len(bases), dtype=bool)
        rows: list[np.ndarray] = []
        for v, share in zip(range(m), np.array_split(np.arange(k), m), strict=True):
            dist = ((f_bases - f_victims[v]) ** 2).sum(dim=1).numpy()
            dist[taken] = np.inf
            pick = np.argsort(dist, kind="stable")[: len(share)]
            taken[pick] = True
            victim = torch.from_numpy(self.victims[v : v + 1].astype(np.float32))
            start = (1 - self.opacity) * xt[bases[pick]] + self.opacity * victim
            xt[bases[pick]] = self._collide(start, f_victims[v], lo, hi)
            rows.append(bases[pick])
        chosen = np.sort(np.concatenate(rows))
        mask = mask_of(chosen, len(y))
        poisoned = xt.numpy().astype(x.dtype, copy=False)
        return PoisonResult(
            poisoned, y, mask, self.name, float(mask.mean()), self.target, None, self.params(), self.victims
        )

    def _collide(self, base: Tensor, f_victim: Tensor, lo: float, hi: float) -> Tensor:
        """Poisons near ``base`` whose features meet ``f_victim``."""
        p = base.clone().requires_grad_(True)
        opt = torch.optim.Adam([p], lr=self.lr)
        for _ in range(self.steps):
            collide = ((self._feats(p) - f_victim) ** 2).sum()
            # the gradient for the poisons only: the extractor's own .grad fields are left as they were
            (p.grad,) = torch.autograd.grad(collide + self.beta * ((p - base) ** 2).sum(), p)
            opt.step()
            with torch.no_grad():
                p.clamp_(lo, hi)
        return p.detach()

    def _feats(self, x: Tensor) -> Tensor:
        f = self.features(x)
        if not isinstance(f, Tensor) or f.ndim < 2 or f.shape[0] != x.shape[0]:
            raise InputError("features must map a batch (N, ...) to a tensor of feature vectors (N, D)")
        return f.flatten(1)

    def params(self) -> dict[str, Any]:
        return {
            **super().params(),
            "target": self.target,
            "n_victims": len(self.victims),
            "beta": self.beta,
            "steps": self.steps,
            "lr": self.lr,
            "opacity": self.opacity,
        }
