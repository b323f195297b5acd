"""Real data for the federated-attack tests: the digits splits as numpy and as tensors."""

from __future__ import annotations

import numpy as np
import pytest

from modelshield.core.datasets import Dataset, sklearn_dataset


@pytest.fixture(scope="session")
def digits_train() -> Dataset:
    """Digits train split: 1347 images (N, 1, 8, 8) float32 in [0, 1], labels int64."""
    return sklearn_dataset("digits", "train")


@pytest.fixture(scope="session")
def digits_xy(digits_train: Dataset) -> tuple[np.ndarray, np.ndarray]:
    return digits_train.x.numpy(), digits_train.y.numpy()
