"""Shared fixtures: the demo digits CNN, trained once per test session (a few seconds)."""

from __future__ import annotations

import pytest
import torch

from modelshield.core.datasets import Dataset
from modelshield.core.model import TorchModel
from modelshield.demo import demo_model_and_data


@pytest.fixture(scope="session")
def digits() -> tuple[TorchModel, Dataset]:
    """The demo model and the digits test split (450 images, 1×8×8 in [0, 1])."""
    torch.manual_seed(0)
    return demo_model_and_data(seed=0)


@pytest.fixture(scope="session")
def digits_model(digits: tuple[TorchModel, Dataset]) -> TorchModel:
    return digits[0]


@pytest.fixture(scope="session")
def digits_test(digits: tuple[TorchModel, Dataset]) -> Dataset:
    return digits[1]
