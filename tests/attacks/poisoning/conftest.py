"""Real data for the poisoning tests: digits as numpy, the demo CNN as the victim, a spam sample."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from threadpoolctl import threadpool_limits

from modelshield.core.datasets import Dataset, sklearn_dataset
from modelshield.demo import train_digits_cnn

Arrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
SPAM = Path(__file__).parents[2] / "data" / "poison_attacks" / "spam_sample.jsonl"


@pytest.fixture(scope="session", autouse=True)
def one_blas_thread() -> Iterator[None]:
    """BLAS on one thread: these small fits run 100× slower when its threads fight a loaded machine."""
    with threadpool_limits(1):
        yield


@pytest.fixture(scope="session")
def digits_arrays() -> Arrays:
    """Digits train (1347) and test (450) splits: images (N, 1, 8, 8) in [0, 1] and labels."""
    tr, te = sklearn_dataset("digits", "train"), sklearn_dataset("digits", "test")
    return tr.x.numpy(), tr.y.numpy(), te.x.numpy(), te.y.numpy()


def cnn_predict(x: np.ndarray, y: np.ndarray, seed: int = 0) -> Callable[[np.ndarray], np.ndarray]:
    """Train the demo CNN on (x, y) and return its predict function over numpy images."""
    net = train_digits_cnn(Dataset(torch.from_numpy(x.astype(np.float32)), torch.from_numpy(y), "poisoned"), seed=seed)

    def predict(a: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return net(torch.from_numpy(np.asarray(a, dtype=np.float32))).argmax(1).numpy()

    return predict


@pytest.fixture(scope="session")
def spam() -> tuple[np.ndarray, np.ndarray]:
    """320 SpamAssassin emails (subject + start of body) and their labels (1 = spam)."""
    rows = [json.loads(line) for line in SPAM.read_text(encoding="utf-8").splitlines()]
    return np.array([r["text"] for r in rows], dtype=object), np.array([r["label"] for r in rows])
