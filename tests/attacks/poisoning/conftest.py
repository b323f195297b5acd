"""Real data for the poisoning tests: digits as numpy, the demo CNN as the victim, a spam sample."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from poison_data import Arrays
from threadpoolctl import threadpool_limits

from modelshield.core.datasets import sklearn_dataset

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


@pytest.fixture(scope="session")
def spam() -> tuple[np.ndarray, np.ndarray]:
    """320 SpamAssassin emails (subject + start of body) and their labels (1 = spam)."""
    rows = [json.loads(line) for line in SPAM.read_text(encoding="utf-8").splitlines()]
    return np.array([r["text"] for r in rows], dtype=object), np.array([r["label"] for r in rows])
