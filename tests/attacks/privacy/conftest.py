"""Fixtures for the privacy-attack tests: digits split into members and non-members, a small MLP trained to
memorise the members (deliberately overfit), and the same network regularised and stopped early."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from privacy_helpers import EXTRA, N_MEMBERS, Audit, mlp_train_fn
from sklearn.datasets import load_digits

from modelshield.attacks.privacy import ReferenceModels
from modelshield.core.model import TorchModel


@pytest.fixture(scope="session")
def audit() -> Audit:
    x, y = load_digits(return_X_y=True)
    order = np.random.default_rng(0).permutation(len(x))
    is_member = np.arange(2 * N_MEMBERS) < N_MEMBERS
    xs, ys = torch.from_numpy((x[order] / 16).astype(np.float32)), torch.from_numpy(y[order])
    pool = slice(0, 2 * N_MEMBERS)
    rest = slice(2 * N_MEMBERS, 2 * N_MEMBERS + EXTRA)
    return Audit(xs[pool], ys[pool], is_member, xs[rest], ys[rest])


@pytest.fixture(scope="session")
def overfit(audit: Audit) -> TorchModel:
    """300 full-batch epochs on 100 digits: training loss ~0, test accuracy ~90 %."""
    return mlp_train_fn()(*audit.members)


@pytest.fixture(scope="session")
def generalising(audit: Audit) -> TorchModel:
    """The same network trained 30 epochs on the members and 1000 other digits: test accuracy ~97 %.

    (On 100 samples alone even a weight-decayed linear model leaks: AUC ~0.65; more data is what helps.)"""
    x, y = audit.members
    return mlp_train_fn(epochs=30)(torch.cat([x, audit.extra_x]), torch.cat([y, audit.extra_y]))


@pytest.fixture(scope="session")
def references(audit: Audit) -> ReferenceModels:
    """4 reference models on random halves of the audit pool, 150 epochs (the attacker's guess at the recipe)."""
    return ReferenceModels.train(mlp_train_fn(epochs=150, seed=1), audit.x, audit.y, n_models=4)
