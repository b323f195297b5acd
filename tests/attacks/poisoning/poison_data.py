"""Helpers shared by the poisoning tests (a module of its own: ``from conftest import ...`` resolves to whichever
conftest.py pytest loaded last)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from modelshield.core.datasets import Dataset
from modelshield.demo import train_digits_cnn

Arrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def cnn_predict(x: np.ndarray, y: np.ndarray, seed: int = 0) -> Callable[[np.ndarray], np.ndarray]:
    """Train the demo CNN on (x, y) and return its predict function over numpy images."""
    net = train_digits_cnn(Dataset(torch.from_numpy(x.astype(np.float32)), torch.from_numpy(y), "poisoned"), seed=seed)

    def predict(a: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return net(torch.from_numpy(np.asarray(a, dtype=np.float32))).argmax(1).numpy()

    return predict
