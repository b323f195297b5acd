"""Fixtures for the detector tests: the demo CNN, the digits test split halved, PGD examples."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from torch import Tensor

import modelshield.demo
from modelshield.attacks.evasion import PGD
from modelshield.core.model import TorchModel

EPS = 0.1  # the demo assessment's gating ε


@dataclass(frozen=True)
class Split:
    model: TorchModel
    x_fit: Tensor
    y_fit: Tensor
    x_clean: Tensor
    y_clean: Tensor
    x_adv: Tensor  # successful PGD examples made from correctly classified x_clean
    y_adv: Tensor


@pytest.fixture(scope="session")
def digits() -> Split:
    torch.set_num_threads(1)
    model, test = modelshield.demo.demo_model_and_data(seed=0)  # the session's training (tests/conftest.py)
    order = torch.randperm(len(test), generator=torch.Generator().manual_seed(0))
    fit, held = order[: len(order) // 2], order[len(order) // 2 :]
    x, y = test.x[held], test.y[held]
    ok = model.predict(x) == y
    x_adv = PGD(eps=EPS, steps=20, seed=0)(model, x[ok], y[ok])
    fooled = model.predict(x_adv) != y[ok]
    return Split(model, test.x[fit], test.y[fit], x, y, x_adv[fooled], y[ok][fooled])
