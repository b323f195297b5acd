"""Privacy accounting for DP-SGD with Google's ``dp-accounting`` library.

Each step of DP-SGD is a Poisson-subsampled Gaussian mechanism (sampling rate ``q``, noise multiplier
``σ``); ``steps`` of them compose. Two accountants bound the resulting (ε, δ):

- ``"rdp"``: Rényi DP (Mironov 2017, https://arxiv.org/abs/1702.07476; subsampled Gaussian per
  Mironov, Talwar, Zhang 2019, https://arxiv.org/abs/1908.10530), fast and the most widely reported.
- ``"pld"``: privacy loss distributions (Koskela et al. 2020, https://arxiv.org/abs/1906.03049; Doroshenko
  et al. 2022, https://arxiv.org/abs/2207.04380), numerically tight, so the same training spends a
  smaller ε (the figure Opacus's default PRV accountant gives); where RDP's bound is the smaller (heavy
  noise, billions of steps, where discretisation costs PLD its edge), that one is reported.

Accountants are easy to get subtly wrong, so modelshield uses the library Google maintains and TensorFlow
Privacy builds on instead of its own; the tests cross-check it against Opacus's accountants.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any, Literal

from modelshield.core.errors import DependencyError, InputError

Accountant = Literal["rdp", "pld"]
ACCOUNTANTS: tuple[Accountant, ...] = ("rdp", "pld")
#: PLD discretisation: coarse for progress reports and for bracketing searches; an answer is refined by
#: thirds down to dp-accounting's default grid until two grids agree to :data:`_PLD_AGREE`, because the
#: error grows with the steps (at 1e-3 a million steps read 6 % high, a billion 3.4× high). A coarser grid
#: rounds the same losses further up, so it never reads lower: every grid gives a valid bound.
_PLD_COARSE, _PLD_FINEST, _PLD_AGREE = 1e-3, 1e-4, 0.005
_MIN_SIGMA, _MAX_SIGMA = 0.1, 1e3
#: a subset of dp-accounting's default Rényi orders (cheap ones): never below the full set's ε, so a search
#: on them brackets the answer from the safe side before the full set refines it
_FAST_ORDERS = [1.5, *range(2, 64), 128, 256, 512, 1024]


def _library() -> Any:
    try:
        import dp_accounting
    except ImportError:
        raise DependencyError(
            "DP accounting needs Google's dp-accounting library", hint="pip install 'dp-accounting>=0.4'"
        ) from None
    return dp_accounting


def _check(noise_multiplier: float, sample_rate: float, steps: int, delta: float, accountant: str) -> None:
    if accountant not in ACCOUNTANTS:
        raise InputError(f"accountant must be one of {', '.join(ACCOUNTANTS)}, not {accountant!r}")
    if not noise_multiplier > 0 or not math.isfinite(noise_multiplier):
        raise InputError(f"the noise multiplier must be a positive number, got {noise_multiplier}")
    if not 0 < sample_rate <= 1:
        raise InputError(f"the sampling rate must lie in (0, 1], got {sample_rate}")
    if steps < 0:
        raise InputError(f"steps must be non-negative, got {steps}")
    if not 0 < delta < 1:
        raise InputError(f"δ must lie in (0, 1), got {delta}")


def _event(noise_multiplier: float, sample_rate: float, steps: int) -> Any:
    lib = _library()
    return lib.SelfComposedDpEvent(lib.PoissonSampledDpEvent(sample_rate, lib.GaussianDpEvent(noise_multiplier)), steps)


def _pld(event: Any, delta: float, fast: bool) -> float:
    lib, interval, coarser = _library(), _PLD_COARSE, math.inf
    while True:
        eps = float(lib.pld.PLDAccountant(value_discretization_interval=interval).compose(event).get_epsilon(delta))
        if fast or coarser - eps <= _PLD_AGREE * eps or interval / 3 < _PLD_FINEST * 0.99:
            return eps
        coarser, interval = eps, interval / 3


def _epsilon(
    noise_multiplier: float, sample_rate: float, steps: int, delta: float, accountant: Accountant, fast: bool
) -> float:
    if steps == 0:
        return 0.0
    quiet = logging.getLogger("absl")  # dp-accounting logs each fractional order it drops
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        event = _event(noise_multiplier, sample_rate, steps)
        rdp = float(_library().rdp.RdpAccountant(_FAST_ORDERS if fast else None).compose(event).get_epsilon(delta))
        # both bound the same mechanism, so the smaller holds; on extreme settings (σ = 50, 10⁹ steps) the
        # discretised PLD is the looser one
        return min(rdp, _pld(event, delta, fast)) if accountant == "pld" else rdp
    finally:
        quiet.setLevel(level)


def epsilon(
    noise_multiplier: float,
    sample_rate: float,
    steps: int,
    delta: float,
    accountant: Accountant = "rdp",
    *,
    fast: bool = False,
) -> float:
    """ε spent by ``steps`` Poisson-sampled Gaussian steps at δ (0 for no steps).

    ``fast`` gives a quicker upper bound on the answer (for progress reports during training): RDP on
    cheap orders only, PLD on a coarse grid without refining it."""
    _check(noise_multiplier, sample_rate, steps, delta, accountant)
    return _epsilon(noise_multiplier, sample_rate, steps, delta, accountant, fast=fast)


def _last_within(within: Callable[[int], bool], lo: int, hi: int) -> int:
    """The largest n in [lo, hi) with ``within(n)``, given ``within(lo)`` and not ``within(hi)``."""
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if within(mid) else (lo, mid)
    return lo


def noise_for_epsilon(
    target_epsilon: float, sample_rate: float, steps: int, delta: float, accountant: Accountant = "rdp"
) -> float:
    """The smallest noise multiplier (to 0.1 %) whose ``steps`` steps spend at most ``target_epsilon`` at δ.

    Found on the fast bound first (bracketed by doubling from σ = 1, where accountants are quick and
    stable), whose σ is always within the budget; the full answer, which at large ε can need 10 % less
    noise, then moves it down in widening steps and a last bisection.
    """
    _check(1.0, sample_rate, max(steps, 1), delta, accountant)
    if not target_epsilon > 0:
        raise InputError(f"the target ε must be positive, got {target_epsilon}")

    def within(s: float, fast: bool = False) -> bool:
        return _epsilon(s, sample_rate, steps, delta, accountant, fast=fast) <= target_epsilon

    def narrow(ok: Callable[[float], bool], lo: float, hi: float) -> float:
        while hi - lo > 1e-3 * hi:  # invariant: not ok(lo), ok(hi)
            mid = (lo + hi) / 2
            lo, hi = (lo, mid) if ok(mid) else (mid, hi)
        return hi

    hi = 1.0
    while not within(hi, fast=True):
        hi *= 2
        if hi > _MAX_SIGMA:
            raise InputError(
                f"no noise multiplier up to {_MAX_SIGMA:g} reaches ε={target_epsilon:g} at δ={delta:g} "
                f"with q={sample_rate:.4g} over {steps} steps; train fewer steps or allow a larger ε"
            )
    lo, step = hi / 2, 0.01
    while within(lo, fast=True):
        lo, hi = lo / 2, lo
        if lo < _MIN_SIGMA:
            return hi  # ε is so large that almost no noise is needed; do not chase σ towards 0
    hi = narrow(lambda s: within(s, fast=True), lo, hi)
    lo = hi / (1 + step)
    while within(lo):
        hi, step = lo, step * 2
        lo = hi / (1 + step)
        if lo < _MIN_SIGMA:
            return hi
    return narrow(within, lo, hi)


def steps_within(
    target_epsilon: float,
    noise_multiplier: float,
    sample_rate: float,
    max_steps: int,
    delta: float,
    accountant: Accountant = "rdp",
) -> int:
    """The most steps (≤ ``max_steps``) that spend at most ``target_epsilon``: where training must stop.

    Bisection on the fast bound finds steps surely within; galloping on the full answer then takes the
    steps the fast bound gave up."""
    _check(noise_multiplier, sample_rate, max_steps, delta, accountant)

    def within(n: int, fast: bool = False) -> bool:
        return _epsilon(noise_multiplier, sample_rate, n, delta, accountant, fast=fast) <= target_epsilon

    if within(max_steps):
        return max_steps
    lo = _last_within(lambda n: within(n, fast=True), 0, max_steps)
    stride, hi = 1, lo + 1
    while hi < max_steps and within(hi):
        lo, stride = hi, stride * 2
        hi = min(lo + stride, max_steps)
    return _last_within(within, lo, hi)
