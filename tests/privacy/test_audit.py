"""The ε lower bound: exact Clopper–Pearson limits, and bounds that never overstate a mechanism's known ε."""

from __future__ import annotations

import math

import numpy as np
import pytest

from modelshield.core.errors import InputError
from modelshield.privacy.audit import clopper_pearson, epsilon_from_counts, epsilon_lower_bound


def test_clopper_pearson_matches_the_textbook_interval() -> None:
    # 5 of 20, exact 95% two-sided interval: 0.0866 to 0.4910 (Clopper & Pearson 1934; every statistics table)
    lo, hi = clopper_pearson(5, 20, 0.025)
    assert lo == pytest.approx(0.0866, abs=5e-5)
    assert hi == pytest.approx(0.4910, abs=5e-5)


def test_clopper_pearson_at_the_edges_has_closed_forms() -> None:
    lo, hi = clopper_pearson(0, 100, 0.05)
    assert lo == 0.0 and hi == pytest.approx(1 - 0.05 ** (1 / 100))
    lo, hi = clopper_pearson(100, 100, 0.05)
    assert hi == 1.0 and lo == pytest.approx(0.05 ** (1 / 100))


def test_a_perfect_attack_is_capped_by_the_sample_size() -> None:
    # 1000 members all flagged, 1000 non-members none: the limits are 0.025^(1/1000) and 1 − that
    p = 0.025 ** (1 / 1000)
    assert epsilon_from_counts(1000, 1000, 0, 1000) == pytest.approx(math.log(p / (1 - p)))
    bound = epsilon_lower_bound(np.r_[np.ones(1000), np.zeros(1000)], np.r_[np.ones(1000), np.zeros(1000)])
    assert bound.epsilon == pytest.approx(bound.epsilon_max)
    assert 5.0 < bound.epsilon < 5.6  # Bonferroni over the thresholds costs a little against one fixed rule


def test_scores_unrelated_to_membership_give_no_leak() -> None:
    rng = np.random.default_rng(0)
    bound = epsilon_lower_bound(rng.normal(size=4000), rng.integers(0, 2, size=4000))
    assert bound.epsilon == 0.0


@pytest.mark.parametrize("eps", [0.5, 2.0])
def test_randomised_response_is_approached_from_below(eps: float) -> None:
    """Randomised response is exactly ε-DP: members answer 1 with probability e^ε/(1+e^ε), others 1/(1+e^ε)."""
    rng = np.random.default_rng(1)
    n = 50_000
    p = math.exp(eps) / (1 + math.exp(eps))
    scores = np.r_[rng.random(n) < p, rng.random(n) < 1 - p].astype(float)
    bound = epsilon_lower_bound(scores, np.r_[np.ones(n), np.zeros(n)])
    assert 0.9 * eps < bound.epsilon <= eps
    assert bound.tpr == pytest.approx(p, abs=0.01) and bound.fpr == pytest.approx(1 - p, abs=0.01)


def test_the_bound_overstates_a_known_epsilon_less_often_than_its_confidence_allows() -> None:
    rng = np.random.default_rng(2)
    eps, n, trials = 1.0, 150, 300
    p = math.exp(eps) / (1 + math.exp(eps))
    member = np.r_[np.ones(n), np.zeros(n)]
    over = 0
    for _ in range(trials):
        scores = np.r_[rng.random(n) < p, rng.random(n) < 1 - p].astype(float) + rng.normal(0, 1e-3, 2 * n)
        over += epsilon_lower_bound(scores, member, confidence=0.9).epsilon > eps
    assert over / trials <= 0.1


def test_delta_lowers_the_bound() -> None:
    rng = np.random.default_rng(3)
    scores = np.r_[rng.normal(2, 1, 2000), rng.normal(0, 1, 2000)]
    member = np.r_[np.ones(2000), np.zeros(2000)]
    pure = epsilon_lower_bound(scores, member)
    approx = epsilon_lower_bound(scores, member, delta=0.05)
    assert 0 < approx.epsilon < pure.epsilon


@pytest.mark.parametrize(
    ("scores", "member", "message"),
    [
        ([0.1, 0.2], [1], "differ in length"),
        ([0.1, float("nan")], [1, 0], "NaN"),
        ([0.1, 0.2], [1, 1], "members and non-members"),
        ([0.1, 0.2], [1, 2], "0/1"),
    ],
)
def test_bad_input_is_refused_by_name(scores: list[float], member: list[int], message: str) -> None:
    with pytest.raises(InputError, match=message):
        epsilon_lower_bound(scores, member)


def test_confidence_and_delta_are_checked() -> None:
    with pytest.raises(InputError, match="confidence"):
        epsilon_from_counts(5, 10, 1, 10, confidence=1.0)
    with pytest.raises(InputError, match="delta"):
        epsilon_from_counts(5, 10, 1, 10, delta=-0.1)
