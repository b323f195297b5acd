"""DP statistics: noise of the stated scale, unbiased, and accurate when the budget is large."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_wine

from modelshield.core.errors import InputError
from modelshield.privacy.synth import dp_count, dp_histogram, dp_mean, dp_quantile, gaussian_sigma


def test_count_noise_has_the_stated_variance() -> None:
    rng = np.random.default_rng(0)
    rho, releases = 0.02, 4000
    sigma = gaussian_sigma(rho)
    values = np.array([dp_count(1000, rho, rng).value for _ in range(releases)])
    assert dp_count(1000, rho, rng).sigma == pytest.approx(sigma)
    # the sample variance of n Gaussians has relative s.d. √(2/(n−1)) ≈ 2.2 %: 5 s.d. is a loose bound
    assert values.var(ddof=1) == pytest.approx(sigma**2, rel=0.12)
    assert abs(values.mean() - 1000) < 5 * sigma / np.sqrt(releases)


def test_histogram_noise_is_per_bin() -> None:
    rng = np.random.default_rng(1)
    counts = np.array([50, 0, 20])
    draws = np.array([dp_histogram(counts, 0.5, rng, ["a", "b", "c"]).value for _ in range(3000)])
    assert draws.mean(0) == pytest.approx(counts, abs=0.1)
    assert draws.std(0) == pytest.approx(np.full(3, gaussian_sigma(0.5)), rel=0.1)


def test_mean_and_median_of_a_real_column() -> None:
    alcohol = load_wine(as_frame=True).frame["alcohol"].to_numpy()
    rng = np.random.default_rng(2)
    mean = dp_mean(alcohol, 10.0, 16.0, rho=10.0, rng=rng)
    assert mean.value == pytest.approx(alcohol.mean(), abs=0.05)
    median = dp_quantile(alcohol, 0.5, 10.0, 16.0, rho=10.0, rng=rng)
    assert median.value == pytest.approx(np.median(alcohol), abs=0.1)
    # at a tiny budget the answers are noisy but stay inside the public bounds
    for _ in range(50):
        assert 10.0 <= np.asarray(dp_mean(alcohol, 10.0, 16.0, rho=1e-6, rng=rng).value) <= 16.0
        assert 10.0 <= np.asarray(dp_quantile(alcohol, 0.5, 10.0, 16.0, rho=1e-6, rng=rng).value) <= 16.0


def test_bad_parameters() -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(InputError):
        dp_mean(np.ones(3), 1.0, 1.0, 1.0, rng)
    with pytest.raises(InputError):
        dp_quantile(np.ones(3), 1.5, 0.0, 1.0, 1.0, rng)
    with pytest.raises(InputError):
        dp_count(3, 0.0, rng)
