"""Fixtures for the smoothing tests: a noise-trained digits CNN (σ = 0.25), one CPU thread."""

from __future__ import annotations

import pytest
import torch

from modelshield.core.datasets import Dataset, sklearn_dataset
from modelshield.core.model import TorchModel
from modelshield.defenses.smoothing import train_with_noise
from modelshield.demo import DEMO_INPUT_SHAPE, DEMO_NUM_CLASSES, DigitsCNN

SIGMA = 0.25


@pytest.fixture(scope="session")
def digits_test() -> Dataset:
    return sklearn_dataset("digits", "test", seed=0)


@pytest.fixture(scope="session")
def noisy_model() -> TorchModel:
    """The demo CNN trained on σ = 0.25 Gaussian-noised digits."""
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = TorchModel(DigitsCNN(), input_shape=DEMO_INPUT_SHAPE, num_classes=DEMO_NUM_CLASSES)
    return train_with_noise(model, sklearn_dataset("digits", "train", seed=0), SIGMA, epochs=5)
