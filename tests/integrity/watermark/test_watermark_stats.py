"""The binomial test is exact and the decision follows the stated false-positive rate."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest

from modelshield.core.errors import InputError
from modelshield.integrity.watermark.stats import WatermarkVerdict, binomial_p_value, min_matches


def exact_tail(k: int, n: int, p: Fraction) -> Fraction:
    return sum((math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k, n + 1)), Fraction(0))


@pytest.mark.parametrize(
    ("k", "n", "p"),
    [
        (0, 64, Fraction(1, 2)),
        (32, 64, Fraction(1, 2)),
        (50, 64, Fraction(1, 2)),
        (64, 64, Fraction(1, 2)),
        (21, 100, Fraction(1, 10)),
        (100, 100, Fraction(1, 10)),
    ],
)
def test_p_value_is_the_exact_binomial_tail(k: int, n: int, p: Fraction) -> None:
    assert binomial_p_value(k, n, float(p)) == pytest.approx(float(exact_tail(k, n, p)), rel=1e-9)


@pytest.mark.parametrize(
    ("n", "chance", "fpr"), [(64, 0.5, 1e-3), (100, 0.1, 1e-3), (32, 0.5, 1e-2), (100, 0.13, 1e-6)]
)
def test_min_matches_is_the_decision_boundary(n: int, chance: float, fpr: float) -> None:
    k = min_matches(n, chance, fpr)
    assert k is not None
    assert WatermarkVerdict.from_counts("x", k, n, chance, fpr).detected
    assert not WatermarkVerdict.from_counts("x", k - 1, n, chance, fpr).detected


def test_too_short_a_message_can_never_be_detected() -> None:
    assert min_matches(8, 0.5, 1e-3) is None  # 8/8 bits happen by chance with p = 1/256
    assert not WatermarkVerdict.from_counts("weights", 8, 8, 0.5, 1e-3).detected


@pytest.mark.parametrize("fpr", [0.0, 1.0, -0.1, float("nan"), 2])
def test_false_positive_rate_must_be_a_probability(fpr: float) -> None:
    with pytest.raises(InputError):
        WatermarkVerdict.from_counts("weights", 60, 64, 0.5, fpr)


def test_summary_states_the_evidence() -> None:
    v = WatermarkVerdict.from_counts("weights", 60, 64, 0.5, 1e-3)
    assert v.detected and v.to_dict()["matched"] == 60
    assert "60/64" in v.summary() and "detected" in v.summary()
