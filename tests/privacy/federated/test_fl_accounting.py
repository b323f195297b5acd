"""Client-level accounting, partitions and settings checks: what a user relies on before any Flower run."""

from __future__ import annotations

import numpy as np
import pytest

from modelshield.core.errors import InputError
from modelshield.privacy.dp.accountant import epsilon
from modelshield.privacy.federated import (
    Experiment,
    FederatedSettings,
    dirichlet_partition,
    iid_partition,
    round_epsilons,
    rounds_within,
)


def test_round_epsilons_grow_and_match_the_dp_sgd_accountant() -> None:
    eps = round_epsilons(noise_multiplier=1.0, sample_rate=0.1, rounds=20, delta=1e-5)
    assert all(a < b for a, b in zip(eps, eps[1:], strict=False))
    # a round is one sampled-Gaussian step on clients: DP-SGD's accountant (cross-checked against Opacus in
    # tests/privacy/dp) with clients for records; the per-round figures (integer Rényi orders) are an upper bound, here within 1 %
    exact = epsilon(1.0, 0.1, 20, 1e-5)
    assert exact <= eps[-1] <= exact * 1.02


def test_rounds_within_stops_before_the_target() -> None:
    n = rounds_within(3.0, noise_multiplier=1.0, sample_rate=0.1, max_rounds=500, delta=1e-5)
    assert 0 < n < 500
    assert epsilon(1.0, 0.1, n, 1e-5) <= 3.0 < epsilon(1.0, 0.1, n + 1, 1e-5)
    with pytest.raises(InputError, match="one round already spends"):
        rounds_within(0.01, noise_multiplier=0.5, sample_rate=1.0, max_rounds=10, delta=1e-5)


def test_iid_partition_covers_every_row_once() -> None:
    parts = iid_partition(1437, 10, seed=0)
    rows = np.concatenate(parts)
    assert sorted(rows.tolist()) == list(range(1437))
    assert max(map(len, parts)) - min(map(len, parts)) <= 1


def test_dirichlet_partition_skews_labels_as_alpha_shrinks() -> None:
    from sklearn.datasets import load_digits

    y = load_digits().target

    def skew(alpha: float) -> float:  # mean share of each client's most common class
        parts = dirichlet_partition(y, 10, alpha=alpha, seed=0)
        assert sorted(np.concatenate(parts).tolist()) == list(range(len(y)))
        return float(np.mean([np.bincount(y[p]).max() / len(p) for p in parts]))

    assert skew(0.1) > 0.5 > skew(100.0)
    assert skew(100.0) < 0.2


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"clients": 1}, "--clients"),
        ({"dp": "gaussian"}, "--dp"),
        ({"dp": "fixed", "noise_multiplier": 0.0}, "--noise-multiplier"),
        ({"dp": "adaptive", "secagg": True}, "SecAgg"),
        ({"experiments": (Experiment("krum"),), "dp": "fixed"}, "clipped mean"),
        ({"experiments": (Experiment("median"),), "secagg": True}, "only their sum"),
        ({"experiments": (Experiment("bulyan", "sign-flip", 0.3),)}, "bulyan with 3 Byzantine"),
        ({"experiments": (Experiment("fedavg", "sign-flip", 0.01),)}, "is no client"),
        ({"experiments": (Experiment("fedavg", "poison"),)}, "--attack"),
    ],
)
def test_settings_refuse_what_cannot_work(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(InputError, match=message):
        FederatedSettings(**kwargs).check()  # type: ignore[arg-type]


def test_settings_round_trip_through_json() -> None:
    s = FederatedSettings(clients=5, dp="fixed", experiments=(Experiment("fedavg", "gaussian", 0.2),)).check()
    assert FederatedSettings.from_json(s.to_json()) == s
