"""The statistics behind randomized smoothing: exact binomial bounds and the certified radius.

Cohen, Rosenfeld, Kolter, "Certified Adversarial Robustness via Randomized Smoothing", ICML 2019,
https://arxiv.org/abs/1902.02918 (Theorem 1, algorithms PREDICT and CERTIFY).
"""

from __future__ import annotations

from scipy.stats import beta, binomtest, norm

from modelshield.core.errors import InputError


def clopper_pearson_lower(successes: int, trials: int, alpha: float) -> float:
    """One-sided (1 − α) Clopper–Pearson lower confidence bound on a binomial proportion.

    The exact bound ``Beta(α; k, n − k + 1)``; 0 when there are no successes. CERTIFY uses it on
    the top class's count so that the certificate holds with probability at least 1 − α.
    """
    if trials < 1 or not 0 <= successes <= trials:
        raise InputError(f"need 0 ≤ successes ≤ trials and trials ≥ 1, got {successes}/{trials}")
    if not 0 < alpha < 1:
        raise InputError(f"alpha must be in (0, 1), got {alpha}")
    if successes == 0:
        return 0.0
    return float(beta.ppf(alpha, successes, trials - successes + 1))


def certified_radius(p_lower: float, sigma: float) -> float:
    """L2 radius ``σ · Φ⁻¹(p_A)`` within which the smoothed prediction cannot change (0 if p_A ≤ ½)."""
    if p_lower <= 0.5:
        return 0.0
    return float(sigma * norm.ppf(min(p_lower, 1.0 - 1e-16)))


def top_two_significant(count_a: int, count_b: int, alpha: float) -> bool:
    """PREDICT's test: is the top class's lead over the runner-up significant at level α?

    A two-sided binomial test of ``count_a`` successes in ``count_a + count_b`` trials at p = ½;
    Cohen et al. show PREDICT then returns a wrong class with probability at most α.
    """
    total = count_a + count_b
    if total == 0:
        return False
    return bool(binomtest(count_a, total, 0.5).pvalue <= alpha)


__all__ = ["certified_radius", "clopper_pearson_lower", "top_two_significant"]
