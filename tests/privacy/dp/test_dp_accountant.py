"""The accountant (Google's dp-accounting) agrees with Opacus's, and its searches land on the right side."""

from __future__ import annotations

import pytest

from modelshield.core.errors import InputError
from modelshield.privacy.dp import epsilon, noise_for_epsilon, steps_within

# The standard MNIST setting of Abadi et al. and the Opacus examples.
Q, SIGMA, DELTA = 256 / 60000, 1.1, 1e-5
STEPS = int(60 / Q)


def test_rdp_matches_opacus_rdp_within_one_percent() -> None:
    from opacus.accountants import RDPAccountant

    theirs = RDPAccountant()
    theirs.history = [(SIGMA, Q, STEPS)]
    ours = epsilon(SIGMA, Q, STEPS, DELTA, "rdp")
    assert ours == pytest.approx(theirs.get_epsilon(DELTA), rel=0.01)
    assert 2.4 < ours < 2.8  # and it is the figure the literature quotes for this setting (≈ 2.6)


def test_pld_matches_opacus_prv_within_one_percent_and_is_tighter_than_rdp() -> None:
    from opacus.accountants import PRVAccountant

    theirs = PRVAccountant()
    theirs.history = [(SIGMA, Q, STEPS)]
    ours = epsilon(SIGMA, Q, STEPS, DELTA, "pld")
    assert ours == pytest.approx(theirs.get_epsilon(DELTA), rel=0.01)
    assert ours < epsilon(SIGMA, Q, STEPS, DELTA, "rdp")


def test_noise_for_epsilon_is_the_smallest_sigma_within_the_target() -> None:
    q, steps = 128 / 1347, 200
    sigma = noise_for_epsilon(3.0, q, steps, DELTA)
    assert epsilon(sigma, q, steps, DELTA) <= 3.0
    assert epsilon(sigma * 0.99, q, steps, DELTA) > 3.0


def test_steps_within_is_the_last_step_inside_the_budget() -> None:
    q = 0.05
    n = steps_within(2.0, 1.0, q, 5000, DELTA)
    assert 0 < n < 5000
    assert epsilon(1.0, q, n, DELTA) <= 2.0 < epsilon(1.0, q, n + 1, DELTA)
    assert steps_within(100.0, 1.0, q, 50, DELTA) == 50


@pytest.mark.parametrize(
    ("args", "words"),
    [((0.0, Q, 10, DELTA), "noise multiplier"), ((1.0, 1.5, 10, DELTA), "sampling rate"), ((1.0, Q, 10, 1.0), "δ")],
)
def test_bad_values_are_input_errors(args: tuple[float, float, int, float], words: str) -> None:
    with pytest.raises(InputError, match=words):
        epsilon(*args)
