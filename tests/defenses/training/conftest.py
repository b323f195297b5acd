"""Fixtures for the robust-training tests: digits splits and fresh seeded CNNs (one CPU thread: tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from modelshield.core.datasets import Dataset, sklearn_dataset
from modelshield.core.model import TorchModel
from modelshield.demo import DEMO_INPUT_SHAPE, DEMO_NUM_CLASSES, DigitsCNN


@pytest.fixture(scope="session")
def digits_train() -> Dataset:
    return sklearn_dataset("digits", "train", seed=0)


@pytest.fixture(scope="session")
def digits_eval() -> Dataset:
    return sklearn_dataset("digits", "test", seed=0)


@pytest.fixture
def fresh_model() -> Callable[[], TorchModel]:
    """A factory of identically initialised, untrained demo CNNs."""

    def make() -> TorchModel:
        torch.manual_seed(0)
        return TorchModel(DigitsCNN(), input_shape=DEMO_INPUT_SHAPE, num_classes=DEMO_NUM_CLASSES)

    return make
