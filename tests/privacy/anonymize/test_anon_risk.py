"""Prosecutor, journalist and marketer risk from class sizes."""

from __future__ import annotations

import numpy as np
import pytest

from modelshield.core.errors import InputError
from modelshield.privacy.anonymize import risk_from_classes
from modelshield.privacy.anonymize.risk import expected_inverse


def test_the_table_as_its_own_population() -> None:
    report = risk_from_classes(np.array([1, 1, 2, 5]))  # 9 records in 4 classes
    assert report.records == 9 and report.classes == 4
    assert report.sample_uniques == pytest.approx(2 / 9)
    assert report.prosecutor_highest == 1.0 and report.prosecutor_success == pytest.approx(4 / 9)
    assert report.prosecutor_at_risk == pytest.approx(4 / 9)  # risk 1 and 1/2 are above 0.2; 1/5 is not
    assert report.marketer_success == pytest.approx(report.prosecutor_success)  # π = 1: F = f


@pytest.mark.parametrize(("f", "fraction"), [(1, 0.1), (2, 0.1), (5, 0.3), (3, 0.01), (4, 1e-4)])
def test_journalist_risk_is_the_posterior_mean_of_one_over_f(f: int, fraction: float) -> None:
    rng = np.random.default_rng(0)
    population = f + rng.negative_binomial(f, fraction, 400_000)  # F − f ~ NegBin(f, π)
    assert expected_inverse(f, fraction) == pytest.approx(np.mean(1.0 / population), rel=0.01)


def test_the_closed_form_for_uniques_and_the_population_check() -> None:
    fraction = 0.05
    assert expected_inverse(1, fraction) == pytest.approx(fraction / (1 - fraction) * np.log(1 / fraction))
    sampled = risk_from_classes(np.array([1, 1, 2, 4]), population=160)
    assert sampled.journalist_highest < sampled.prosecutor_highest and sampled.marketer_success < 0.5
    with pytest.raises(InputError, match="smaller than the table"):
        risk_from_classes(np.array([3, 3]), population=4)
