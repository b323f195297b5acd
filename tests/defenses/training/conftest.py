"""Fixtures for the robust-training tests: digits splits and fresh seeded CNNs (one CPU thread: tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from modelshield.core.datasets import Dataset, sklearn_dataset
from modelshield.core.model import TorchModel
from modelshield.defenses.training import TrainConfig
from modelshield.demo import DEMO_INPUT_SHAPE, DEMO_NUM_CLASSES, DigitsCNN

GATE = 0.1  # the demo assessment's gating ε (modelshield.cli.assess.DEMO_GATE)


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


def quick(epochs: int, **changes: object) -> TrainConfig:
    """A short run without validation or progress bars (tests measure on the test split instead)."""
    settings: dict[str, object] = {"batch_size": 64, "lr": 3e-3, "val_fraction": 0.0, "progress": False}
    settings.update(changes)
    return TrainConfig(epochs=epochs, **settings)  # type: ignore[arg-type]
