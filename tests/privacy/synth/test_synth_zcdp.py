"""ρ-zCDP budgets: the conversion is the accountant's, parts add up, and the ledger refuses overspending."""

from __future__ import annotations

import math

import dp_accounting
import pytest

from modelshield.core.errors import InputError
from modelshield.privacy.synth import ZcdpLedger, epsilon_for_rho, gaussian_sigma, rho_for_epsilon


@pytest.mark.parametrize("epsilon", [0.1, 1.0, 3.0, 10.0])
def test_rho_for_epsilon_is_the_largest_rho_within_the_target(epsilon: float) -> None:
    rho = rho_for_epsilon(epsilon, 1e-9)
    assert epsilon_for_rho(rho, 1e-9) <= epsilon
    assert epsilon_for_rho(rho * 1.001, 1e-9) > epsilon
    # the library's conversion is tighter than the textbook ε = ρ + 2√(ρ log 1/δ) (Bun & Steinke, Prop. 1.3)
    assert rho + 2 * math.sqrt(rho * math.log(1e9)) > epsilon


def test_ledger_parts_add_up_and_convert_like_the_accountant() -> None:
    ledger = ZcdpLedger.for_epsilon(2.0, 1e-6)
    for name in ("a", "b", "c"):
        ledger.spend(name, ledger.total_rho / 3)
    summary = ledger.summary()
    assert summary["rho_spent"] == pytest.approx(ledger.total_rho)
    expected = dp_accounting.rdp.RdpAccountant().compose(dp_accounting.ZCDpEvent(ledger.total_rho)).get_epsilon(1e-6)
    assert summary["epsilon"] == pytest.approx(expected, rel=1e-9)
    assert summary["epsilon"] == pytest.approx(2.0, rel=1e-4)
    with pytest.raises(InputError, match="exceeds the remaining budget"):
        ledger.spend("d", ledger.total_rho / 100)


def test_gaussian_sigma_costs_rho() -> None:
    # a Gaussian of σ at sensitivity Δ is (Δ²/2σ²)-zCDP; the accountant agrees on the (ε, δ) it gives
    sigma = gaussian_sigma(0.5, sensitivity=2.0)
    assert sigma == pytest.approx(2.0)
    gaussian = dp_accounting.rdp.RdpAccountant().compose(dp_accounting.GaussianDpEvent(sigma / 2.0))
    assert gaussian.get_epsilon(1e-5) == pytest.approx(epsilon_for_rho(0.5, 1e-5), rel=1e-9)


@pytest.mark.parametrize(("epsilon", "delta"), [(0, 1e-9), (-1, 1e-9), (1, 0), (1, 1)])
def test_bad_budgets_are_refused(epsilon: float, delta: float) -> None:
    with pytest.raises(InputError):
        rho_for_epsilon(epsilon, delta)
