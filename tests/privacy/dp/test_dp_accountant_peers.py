"""The accountant against its peers beyond the MNIST point: long runs, tiny and huge ε, the inverse search.

Reference figures come from Opacus's PRV accountant (an upper bound within 0.01 of the true ε) and its RDP
accountant and noise search, and from dp-accounting's exact PLD of the Gaussian mechanism.
"""

from __future__ import annotations

import pytest
import torch

from modelshield.core.errors import InputError
from modelshield.privacy.dp import epsilon, noise_for_epsilon, plan, steps_within, train_dp

MNIST_Q, DELTA = 256 / 60000, 1e-5
MNIST_STEPS = int(60 / MNIST_Q)


def _prv(sigma: float, q: float, steps: int, delta: float) -> float:
    from opacus.accountants import PRVAccountant

    acc = PRVAccountant()
    acc.history = [(sigma, q, steps)]
    return float(acc.get_epsilon(delta))


@pytest.mark.parametrize(
    ("sigma", "q", "steps", "delta"),
    [
        (1.0, 64 / 60000, 9375, 1e-5),  # Opacus's MNIST example: batch 64, 10 epochs
        pytest.param(1.0, 1e-3, 1_000_000, 1e-6, marks=pytest.mark.slow, id="million-steps"),  # Opacus's PRV: 15 s
        (3.0, 1e-3, 100_000, 1e-5),  # small ε
    ],
)
def test_pld_matches_opacus_prv_on_long_runs_and_small_epsilon(
    sigma: float, q: float, steps: int, delta: float
) -> None:
    """Opacus's PRV answer is an upper bound at most ``eps_error`` = 0.01 above the true ε."""
    ours, theirs = epsilon(sigma, q, steps, delta, "pld"), _prv(sigma, q, steps, delta)
    assert theirs - 0.01 - 0.005 * theirs <= ours <= theirs * 1.001


@pytest.mark.parametrize(("sigma", "q", "steps", "delta"), [(50.0, 0.01, 1000, DELTA), (1.0, 1e-4, 10**9, 1e-9)])
def test_pld_is_not_looser_than_rdp_at_the_extremes(sigma: float, q: float, steps: int, delta: float) -> None:
    """Heavy noise, a billion steps: the numerically tight accountant must not report the larger bound
    (a single 1e-3 grid read 0.035 against RDP's 0.019, and 114 against 34)."""
    assert epsilon(sigma, q, steps, delta, "pld") <= epsilon(sigma, q, steps, delta, "rdp")


@pytest.mark.parametrize("target", [8.0, 50.0])
def test_noise_for_large_epsilon_is_the_smallest_sigma(target: float) -> None:
    """At large ε the best Rényi orders are below 2; the search must not stop at a σ the full set beats."""
    sigma = noise_for_epsilon(target, MNIST_Q, MNIST_STEPS, DELTA)
    assert epsilon(sigma, MNIST_Q, MNIST_STEPS, DELTA) <= target
    assert epsilon(sigma * 0.99, MNIST_Q, MNIST_STEPS, DELTA) > target


@pytest.mark.parametrize("accountant", ["rdp", pytest.param("pld", marks=pytest.mark.slow)])  # PRV's search: 20 s
def test_noise_for_epsilon_agrees_with_opacus(accountant: str) -> None:
    """Opacus's get_noise_multiplier stops within 0.01 of the target ε; ours within 0.1 % of σ."""
    from opacus.accountants.utils import get_noise_multiplier

    theirs = get_noise_multiplier(
        target_epsilon=3.0,
        target_delta=DELTA,
        sample_rate=MNIST_Q,
        steps=MNIST_STEPS,
        accountant="prv" if accountant == "pld" else "rdp",
        epsilon_tolerance=0.001,
    )
    ours = noise_for_epsilon(3.0, MNIST_Q, MNIST_STEPS, DELTA, accountant)  # type: ignore[arg-type]
    assert ours == pytest.approx(theirs, rel=0.01)


def test_steps_within_uses_the_full_budget_at_large_epsilon() -> None:
    n = steps_within(40.0, 0.6, 0.3, 2000, DELTA)
    assert epsilon(0.6, 0.3, n, DELTA) <= 40.0 < epsilon(0.6, 0.3, n + 1, DELTA)


def test_q_one_and_one_step_match_the_gaussian_mechanism() -> None:
    """q = 1, one step is the plain Gaussian mechanism; PLD gives its exact ε (Balle & Wang 2018)."""
    from dp_accounting.pld import privacy_loss_distribution as pld_lib

    exact = pld_lib.from_gaussian_mechanism(0.5, value_discretization_interval=1e-4).get_epsilon_for_delta(DELTA)
    assert epsilon(0.5, 1.0, 1, DELTA, "pld") == pytest.approx(exact, rel=0.01)
    assert epsilon(0.5, 1.0, 1, DELTA, "rdp") >= epsilon(0.5, 1.0, 1, DELTA, "pld")


def test_delta_at_or_above_one_over_n_is_refused() -> None:
    """δ ≥ 1/N admits releasing a whole record by chance: the (ε, δ) figure would promise nothing."""
    with pytest.raises(InputError, match="1/N"):
        plan(1000, epsilon_target=3.0, delta=1e-3, epochs=1, batch_size=100, noise_multiplier=None, accountant="rdp")
    net = torch.nn.Linear(4, 2)
    x, y = torch.randn(50, 4), torch.randint(0, 2, (50,))
    with pytest.raises(InputError, match="1/N"):
        train_dp(net, x, y, epsilon=3.0, delta=0.05, epochs=1, batch_size=10)


def test_the_cli_default_delta_stays_below_one_over_n() -> None:
    """`train --dp` without --delta: the customary 1e-5 while it is below 1/N, a smaller power of ten for large
    data (a million rows must not be refused for a default the user never chose)."""
    from modelshield.privacy.dp.training import default_delta

    assert default_delta(1797) == 1e-5 and default_delta(60_000) == 1e-5
    assert default_delta(100_000) == 1e-6 and default_delta(1_000_000) == 1e-7
    assert all(default_delta(n) < 1 / n for n in (2, 10, 99_999, 100_000, 123_456, 10**9))


@pytest.mark.parametrize(
    "args",
    [(float("nan"), MNIST_Q, 10, DELTA), (1.0, float("nan"), 10, DELTA), (1.0, MNIST_Q, 10, float("nan"))],
)
def test_nan_inputs_are_input_errors(args: tuple[float, float, int, float]) -> None:
    with pytest.raises(InputError):
        epsilon(*args)
