"""The detection test: how unlikely is the observed agreement if the model never saw the key?

Under the null hypothesis (the model was trained without this key) each bit of a weight watermark
matches with probability 1/2, and each trigger label with the chance rate, independently, so the
number of matches is Binomial(total, chance). A watermark is declared only when the exact
one-sided p-value ``P[Binomial(total, chance) >= matched]`` is at most the false-positive rate.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import numpy as np
from scipy.stats import binom

from modelshield.core.errors import InputError

DEFAULT_FPR = 1e-3


def check_fpr(fpr: float) -> float:
    """A false-positive rate must be a probability strictly between 0 and 1."""
    if not (isinstance(fpr, int | float) and 0.0 < float(fpr) < 1.0) or math.isnan(fpr):
        raise InputError(f"the false-positive rate must lie strictly between 0 and 1, not {fpr!r}")
    return float(fpr)


def binomial_p_value(matched: int, total: int, chance: float) -> float:
    """Exact one-sided p-value ``P[X >= matched]`` for ``X ~ Binomial(total, chance)``."""
    if not 0 <= matched <= total:
        raise InputError(f"matched must lie in [0, {total}], not {matched}")
    return float(binom.sf(matched - 1, total, chance)) if matched > 0 else 1.0


def min_matches(total: int, chance: float, fpr: float) -> int | None:
    """The fewest matches that would be declared a watermark (None: even ``total`` matches would not)."""
    k = int(binom.isf(fpr, total, chance))  # P[X > k] <= fpr; step down/up to the exact boundary
    while k > 0 and binomial_p_value(k, total, chance) <= fpr:
        k -= 1
    while k <= total and binomial_p_value(k, total, chance) > fpr:
        k += 1
    return k if k <= total else None


@dataclass(frozen=True)
class WatermarkVerdict:
    """The outcome of one verification: the evidence, the test and the decision."""

    kind: str
    detected: bool
    matched: int
    total: int
    chance: float
    p_value: float
    fpr: float

    @classmethod
    def from_counts(cls, kind: str, matched: int, total: int, chance: float, fpr: float) -> WatermarkVerdict:
        """Run the binomial test at ``fpr`` on ``matched`` agreements out of ``total``."""
        p = binomial_p_value(matched, total, chance)
        return cls(kind, p <= check_fpr(fpr), matched, total, chance, p, fpr)

    def summary(self) -> str:
        """One line for a person."""
        word = "detected" if self.detected else "not detected"
        rel = "<=" if self.detected else ">"
        return (
            f"{self.kind} watermark {word}: {self.matched}/{self.total} match (chance {self.chance:.3g}), "
            f"p = {self.p_value:.3g} {rel} false-positive rate {self.fpr:g}"
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready fields."""
        return asdict(self)


class Watermark(Protocol):
    """What calibration needs of a watermark: a verification against a model."""

    def verify(self, model: Any, fpr: float | None = None) -> WatermarkVerdict: ...


def null_keys(n: int, seed: int = 0) -> Iterable[bytes]:
    """``n`` reproducible keys standing for owners unrelated to the model (for calibration runs only)."""
    for i in range(n):
        yield hashlib.sha256(f"modelshield-null-key/{seed}/{i}".encode()).digest()


@dataclass(frozen=True)
class NullCalibration:
    """p-values of verifications that must fail: the empirical false-positive rate at any threshold."""

    p_values: np.ndarray
    matched: np.ndarray
    total: int
    chance: float

    @property
    def trials(self) -> int:
        return int(self.p_values.size)

    def rate(self, fpr: float) -> float:
        """Fraction of null trials that would be declared watermarked at ``fpr`` (should be <= fpr)."""
        return float((self.p_values <= fpr).mean())

    def match_mean_var(self) -> tuple[float, float]:
        """Mean and variance of the match counts, to compare with the binomial's n·p and n·p·(1-p)."""
        return float(self.matched.mean()), float(self.matched.var())


def calibrate(make: Callable[[bytes], Watermark], models: Sequence[Any], n_keys: int, seed: int = 0) -> NullCalibration:
    """Verify each unwatermarked model with ``n_keys`` unrelated keys (``make(key)`` builds the
    watermark) and collect the null p-values: an empirical check of the stated false-positive rate."""
    verdicts = [make(k).verify(m) for m in models for k in null_keys(n_keys, seed)]
    if not verdicts:
        raise InputError("calibration needs at least one model and one key")
    return NullCalibration(
        np.array([v.p_value for v in verdicts]),
        np.array([v.matched for v in verdicts]),
        verdicts[0].total,
        max(v.chance for v in verdicts),
    )
