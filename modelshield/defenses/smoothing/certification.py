"""Certified accuracy against L2 radius for a whole evaluation set, and the abstention rate.

Cohen et al. report "approximate certified test accuracy": the share of inputs CERTIFY
classifies correctly with a radius at least r. This module computes it for a list of radii.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from torch import Tensor

from modelshield.core.errors import InputError
from modelshield.core.model import Model
from modelshield.defenses.results import CertifiedPoint
from modelshield.defenses.smoothing.smooth import ABSTAIN, SmoothedClassifier


@dataclass(frozen=True)
class CertificationResult:
    """Per-input certificates of one evaluation set, with the settings that produced them."""

    sigma: float
    labels: Tensor
    predictions: Tensor
    radii: Tensor
    n0: int
    n: int
    alpha: float
    seconds: float

    @property
    def abstain_rate(self) -> float:
        """Share of inputs the smoothed classifier refused to decide."""
        return float((self.predictions == ABSTAIN).float().mean()) if len(self.labels) else 0.0

    @property
    def clean_accuracy(self) -> float:
        """Share of inputs CERTIFY classifies correctly (radius 0 included): the smoothed model's accuracy."""
        return self.certified_accuracy(0.0)

    def certified_accuracy(self, radius: float) -> float:
        """Share of inputs classified correctly with a certified L2 radius of at least ``radius``."""
        if not len(self.labels):
            return 0.0
        ok = (self.predictions == self.labels) & (self.radii >= radius)
        return float(ok.float().mean())

    def curve(self, radii: Sequence[float]) -> list[CertifiedPoint]:
        """The certified-accuracy curve at each radius, with the (radius-independent) abstention rate."""
        return [
            CertifiedPoint(
                radius=float(r),
                certified_accuracy=self.certified_accuracy(float(r)),
                abstain_rate=self.abstain_rate,
                sigma=self.sigma,
            )
            for r in radii
        ]


def default_radii(sigma: float, points: int = 9) -> list[float]:
    """Radii from 0 to 4σ: the largest radius CERTIFY can give with N = 10⁴ at α = 10⁻³ is about 3.4σ."""
    return [round(4 * sigma * i / (points - 1), 6) for i in range(points)]


def certify_dataset(
    model: Model,
    x: Tensor,
    y: Tensor,
    sigma: float,
    *,
    n0: int = 100,
    n: int = 10_000,
    alpha: float = 0.001,
    batch_size: int = 1000,
    seed: int | None = 0,
) -> CertificationResult:
    """Run CERTIFY on every input of ``x`` and keep what the curve needs."""
    if x.shape[0] != y.shape[0]:
        raise InputError(f"{x.shape[0]} inputs but {y.shape[0]} labels")
    smooth = SmoothedClassifier(model, sigma, batch_size=batch_size, seed=seed)
    start = time.perf_counter()
    cert = smooth.certify(x, n0=n0, n=n, alpha=alpha)
    seconds = time.perf_counter() - start
    return CertificationResult(
        sigma=float(sigma),
        labels=y.detach().cpu(),
        predictions=cert.prediction.cpu(),
        radii=cert.radius.cpu(),
        n0=n0,
        n=n,
        alpha=alpha,
        seconds=seconds,
    )


__all__ = ["CertificationResult", "CertifiedPoint", "certify_dataset", "default_radii"]
