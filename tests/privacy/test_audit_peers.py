"""The audit's ε lower bound against closed forms and statsmodels' Clopper–Pearson intervals.

A perfect attack on n members and n non-members has exact one-sided limits TPR ≥ α^(1/n) and
FPR ≤ 1 − α^(1/n), so its bound is log(α^(1/n) / (1 − α^(1/n))) (Jagielski et al. 2020, Nasr et al. 2021):
with n = 1000 and 95 % confidence over the two limits that is ε ≈ 5.60.
"""

from __future__ import annotations

import math

import pytest

from modelshield.privacy.audit import clopper_pearson, epsilon_from_counts


def test_perfect_attack_bound_is_the_closed_form() -> None:
    n, alpha = 1000, 0.025
    root = alpha ** (1 / n)
    assert epsilon_from_counts(n, n, 0, n, confidence=0.95) == pytest.approx(math.log(root / (1 - root)), rel=1e-9)
    assert epsilon_from_counts(n, n, 0, n, confidence=0.95) == pytest.approx(5.60, abs=0.01)


@pytest.mark.parametrize(("k", "n"), [(1, 50), (17, 200), (480, 500), (3, 10_000)])
def test_limits_match_statsmodels_beta_interval(k: int, n: int) -> None:
    from statsmodels.stats.proportion import proportion_confint

    lo, hi = clopper_pearson(k, n, 0.025)
    ref_lo, ref_hi = proportion_confint(k, n, alpha=0.05, method="beta")  # two-sided 95 % = one-sided 2.5 % each
    assert (lo, hi) == pytest.approx((ref_lo, ref_hi), rel=1e-9)


def test_with_delta_the_bound_follows_both_inequalities() -> None:
    """TPR ≤ e^ε·FPR + δ and 1 − FPR ≤ e^ε·(1 − TPR) + δ, each at its pessimistic limit."""
    lo, _ = clopper_pearson(900, 1000, 0.025)
    _, hi = clopper_pearson(100, 1000, 0.025)
    expected = max(math.log((lo - 1e-3) / hi), math.log((1 - hi - 1e-3) / (1 - lo)))
    assert epsilon_from_counts(900, 1000, 100, 1000, delta=1e-3) == pytest.approx(expected, rel=1e-9)
