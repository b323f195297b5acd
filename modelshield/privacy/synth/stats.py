"""Differentially private statistics under ρ-zCDP: counts, histograms, clipped means, quantiles.

Neighbouring tables differ by adding or removing one row. A count and a histogram then change by 1 in
one cell (L2 sensitivity 1) and get Gaussian noise σ = 1/√(2ρ). A mean is a noisy clipped sum over a
noisy count, each with half the budget; the sum is taken around the middle of [lower, upper], so its
sensitivity is half the width. A quantile is chosen by the exponential mechanism over the gaps between
sorted values (Smith 2011, "Privacy-preserving statistical estimation with optimal convergence rates"),
which needs no noise scale and costs ε²/8.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from modelshield.core.errors import InputError
from modelshield.privacy.synth.zcdp import exponential_epsilon, gaussian_sigma


@dataclass(frozen=True)
class Release:
    """A released statistic with what it cost: ρ, and the Gaussian σ where one was used."""

    statistic: str
    value: float | list[float]
    rho: float
    sigma: float | None
    labels: list[str] | None = None


def _bounds(lower: float, upper: float) -> None:
    if not (math.isfinite(lower) and math.isfinite(upper) and upper > lower):
        raise InputError(f"bounds must be finite with lower < upper, got {lower}, {upper}")


def dp_count(n_rows: int, rho: float, rng: np.random.Generator) -> Release:
    """The number of rows plus N(0, σ²), σ = 1/√(2ρ)."""
    sigma = gaussian_sigma(rho)
    return Release("count", float(n_rows + rng.normal(0, sigma)), rho, sigma)


def dp_histogram(counts: np.ndarray, rho: float, rng: np.random.Generator, labels: list[str]) -> Release:
    """Each bin's count plus independent N(0, σ²): one row moves one bin, so the L2 sensitivity is 1.

    ``labels`` must come from a public domain (declared categories or bin edges) for the whole release
    to be private."""
    sigma = gaussian_sigma(rho)
    noisy = np.asarray(counts, dtype=float) + rng.normal(0, sigma, size=len(counts))
    return Release("histogram", noisy.tolist(), rho, sigma, labels)


def dp_mean(values: np.ndarray, lower: float, upper: float, rho: float, rng: np.random.Generator) -> Release:
    """Mean of values clipped to [lower, upper]: noisy centred sum / noisy count, ρ/2 each, result clipped."""
    _bounds(lower, upper)
    mid, half = (lower + upper) / 2, (upper - lower) / 2
    clipped = np.clip(np.asarray(values, dtype=float), lower, upper)
    sigma_sum, sigma_count = gaussian_sigma(rho / 2, half), gaussian_sigma(rho / 2)
    total = float((clipped - mid).sum() + rng.normal(0, sigma_sum))
    count = float(len(clipped) + rng.normal(0, sigma_count))
    mean = mid + total / max(count, 1.0)
    return Release("mean", float(np.clip(mean, lower, upper)), rho, sigma_sum)


def dp_quantile(
    values: np.ndarray, q: float, lower: float, upper: float, rho: float, rng: np.random.Generator
) -> Release:
    """The ``q``-quantile by the exponential mechanism: a gap between sorted clipped values is picked with
    probability ∝ width · exp(ε·(−|rank − q·n|)/2), then a point uniformly inside it."""
    _bounds(lower, upper)
    if not 0 <= q <= 1:
        raise InputError(f"the quantile must lie in [0, 1], got {q}")
    eps = exponential_epsilon(rho)
    z = np.concatenate([[lower], np.sort(np.clip(np.asarray(values, dtype=float), lower, upper)), [upper]])
    widths = np.diff(z)
    ranks = np.arange(len(widths))
    with np.errstate(divide="ignore"):
        logits = np.log(widths) - eps * np.abs(ranks - q * (len(z) - 2)) / 2
    chosen = int(np.argmax(logits + rng.gumbel(size=len(logits))))
    return Release(f"quantile {q:g}", float(rng.uniform(z[chosen], z[chosen + 1])), rho, None)
