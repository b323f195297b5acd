"""Client-level privacy accounting for DP-FedAvg: one sampled Gaussian mechanism per round.

With server-side clipping to C and Gaussian noise of standard deviation z·C/m on the mean of m
sampled clients' updates (McMahan et al. 2018, https://arxiv.org/abs/1710.06963), a round is a
subsampled Gaussian mechanism on *clients* with noise multiplier z and sampling rate q = m/N. R
rounds compose. The (ε, δ) comes from modelshield's DP-SGD accountant (``privacy.dp.accountant``,
Google's dp-accounting: RDP or PLD), where a "step" is a round and a "record" is a client.

Adaptive clipping (Andrew et al. 2021, https://arxiv.org/abs/1905.03871) also releases a noisy count
of clipped updates; Flower splits the requested z between the two releases so that their composition
has noise multiplier z (the paper's Theorem 1), so the same accounting holds.

Flower samples a fixed number of clients without replacement; the accountant assumes Poisson
sampling at the same rate, the approximation TensorFlow Federated and the paper make (docs/federated.md).
"""

from __future__ import annotations

from typing import cast

from modelshield.core.errors import InputError
from modelshield.privacy.dp.accountant import Accountant, epsilon, steps_within
from modelshield.privacy.federated.settings import FederatedSettings


def round_epsilons(
    *, noise_multiplier: float, sample_rate: float, rounds: int, delta: float, accountant: Accountant = "rdp"
) -> list[float]:
    """ε spent after each of rounds 1..``rounds`` at δ (RDP on integer orders: a slight upper bound, about 1 %)."""
    return [epsilon(noise_multiplier, sample_rate, r, delta, accountant, fast=True) for r in range(1, rounds + 1)]


def rounds_within(
    target_epsilon: float,
    *,
    noise_multiplier: float,
    sample_rate: float,
    max_rounds: int,
    delta: float,
    accountant: Accountant = "rdp",
) -> int:
    """How many rounds fit in ``target_epsilon``: the run stops there. Raise if not even one does."""
    n = steps_within(target_epsilon, noise_multiplier, sample_rate, max_rounds, delta, accountant)
    if n == 0:
        first = epsilon(noise_multiplier, sample_rate, 1, delta, accountant)
        raise InputError(
            f"one round already spends ε={first:.3g} > target {target_epsilon:g} "
            f"(z={noise_multiplier:g}, q={sample_rate:.3g}, δ={delta:g})",
            hint="raise --noise-multiplier or --target-epsilon, or sample fewer clients per round",
        )
    return n


def planned_rounds(s: FederatedSettings) -> tuple[int, list[float | None]]:
    """Rounds the run will make (cut at the target ε) and the ε spent after each (None without DP)."""
    if s.dp == "none":
        return s.rounds, [None] * s.rounds
    q = s.per_round / s.clients
    acct = cast(Accountant, s.accountant)
    rounds = s.rounds
    if s.target_epsilon is not None:
        rounds = rounds_within(
            s.target_epsilon, noise_multiplier=s.noise_multiplier, sample_rate=q, max_rounds=s.rounds,
            delta=s.dp_delta, accountant=acct,
        )  # fmt: skip
    eps = round_epsilons(
        noise_multiplier=s.noise_multiplier, sample_rate=q, rounds=rounds, delta=s.dp_delta, accountant=acct
    )
    return rounds, list(eps)
