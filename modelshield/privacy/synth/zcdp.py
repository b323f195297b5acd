"""ρ-zCDP budgets for releases built from Gaussian measurements and exponential-mechanism selections.

Zero-concentrated DP (Bun & Steinke 2016, https://arxiv.org/abs/1605.02065) composes by adding ρ, which is
why MST and AIM state their budgets in it: a Gaussian measurement of L2 sensitivity Δ with noise σ costs
Δ²/(2σ²), an ε-DP exponential-mechanism choice costs ε²/8 (bounded range, Cesar & Rogers 2021). The
conversion to (ε, δ) is done by Google's ``dp-accounting`` (its ``ZCDpEvent`` in the RDP accountant, the
same library the DP-SGD accountant in :mod:`modelshield.privacy.dp.accountant` wraps), not by hand.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from modelshield.core.errors import InputError
from modelshield.privacy.dp.accountant import _library

#: ρ is searched to this relative precision; the returned ρ never converts to more than the target ε
_REL_TOL = 1e-6


def _check_delta(delta: float) -> None:
    if not 0 < delta < 1:
        raise InputError(f"δ must lie in (0, 1), got {delta}")


def epsilon_for_rho(rho: float, delta: float) -> float:
    """The (ε, δ) guarantee that ρ-zCDP gives, by the RDP accountant's conversion (0 for ρ = 0)."""
    _check_delta(delta)
    if rho < 0 or not math.isfinite(rho):
        raise InputError(f"ρ must be a non-negative number, got {rho}")
    if rho == 0:
        return 0.0
    lib = _library()
    return float(lib.rdp.RdpAccountant().compose(lib.ZCDpEvent(rho)).get_epsilon(delta))


def rho_for_epsilon(epsilon: float, delta: float) -> float:
    """The largest ρ whose zCDP guarantee converts to at most ``epsilon`` at ``delta`` (bisection in log ρ)."""
    _check_delta(delta)
    if not epsilon > 0 or not math.isfinite(epsilon):
        raise InputError(f"ε must be a positive number, got {epsilon}")
    lo, hi = 1e-12, 1.0  # invariant once bracketed: ε(lo) ≤ target < ε(hi)
    while epsilon_for_rho(hi, delta) <= epsilon:
        lo, hi = hi, hi * 4
    while hi / lo > 1 + _REL_TOL:
        mid = math.sqrt(lo * hi)
        lo, hi = (mid, hi) if epsilon_for_rho(mid, delta) <= epsilon else (lo, mid)
    return lo


def gaussian_sigma(rho: float, sensitivity: float = 1.0) -> float:
    """Noise σ of the Gaussian mechanism that costs ρ at L2 ``sensitivity``: σ = Δ / √(2ρ)."""
    if not rho > 0:
        raise InputError(f"ρ must be positive, got {rho}")
    return sensitivity / math.sqrt(2 * rho)


def exponential_epsilon(rho: float) -> float:
    """ε of an exponential mechanism that costs ρ: ε²/8 = ρ (bounded-range analysis)."""
    return math.sqrt(8 * rho)


@dataclass(frozen=True)
class Spend:
    """One part of a budget: what it measured, how many releases, the ρ they cost together."""

    name: str
    rho: float
    releases: int = 1


@dataclass
class ZcdpLedger:
    """A ρ-zCDP budget and the parts spent from it; spending past the total is refused."""

    total_rho: float
    delta: float
    parts: list[Spend] = field(default_factory=list)

    @classmethod
    def for_epsilon(cls, epsilon: float, delta: float) -> ZcdpLedger:
        """A ledger holding the largest ρ that stays within (ε, δ)."""
        return cls(rho_for_epsilon(epsilon, delta), delta)

    @property
    def spent(self) -> float:
        return sum(p.rho for p in self.parts)

    @property
    def remaining(self) -> float:
        return max(self.total_rho - self.spent, 0.0)

    def spend(self, name: str, rho: float, releases: int = 1) -> float:
        """Record ``rho`` spent on ``name``; returns it."""
        if rho <= 0:
            raise InputError(f"{name}: ρ must be positive, got {rho}")
        if self.spent + rho > self.total_rho * (1 + 1e-9):
            raise InputError(f"{name}: ρ={rho:.4g} exceeds the remaining budget {self.remaining:.4g}")
        self.parts.append(Spend(name, rho, releases))
        return rho

    def epsilon(self) -> float:
        """ε at the ledger's δ of everything spent so far, composed by the accountant."""
        lib = _library()
        if not self.parts:
            return 0.0
        events = [lib.ZCDpEvent(p.rho) for p in self.parts]
        return float(lib.rdp.RdpAccountant().compose(lib.ComposedDpEvent(events)).get_epsilon(self.delta))

    def summary(self) -> dict[str, object]:
        """The budget as JSON-ready data: total and parts in ρ, and the (ε, δ) they convert to."""
        return {
            "rho_total": self.total_rho,
            "rho_spent": self.spent,
            "delta": self.delta,
            "epsilon": self.epsilon(),
            "parts": [{"name": p.name, "rho": p.rho, "releases": p.releases} for p in self.parts],
        }
