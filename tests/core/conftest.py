"""Fixtures for the core tests: a small CNN, a fitted logistic regression and digits data."""

from __future__ import annotations

import pytest
import torch
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits

from modelshield.core.datasets import Dataset, sklearn_dataset
from modelshield.demo import DigitsCNN


@pytest.fixture(scope="session")
def digits_small() -> Dataset:
    """64 images of the digits test split, (64, 1, 8, 8) in [0, 1]."""
    return sklearn_dataset("digits", "test").subset(64)


@pytest.fixture(scope="session")
def cnn() -> DigitsCNN:
    """An untrained, seeded demo CNN: weights are all a round trip needs to preserve."""
    torch.manual_seed(0)
    return DigitsCNN().eval()


@pytest.fixture(scope="session")
def logreg() -> LogisticRegression:
    """Logistic regression on flattened digits: 10 classes, 64 features, fitted in well under a second."""
    train = sklearn_dataset("digits", "train")
    with threadpool_limits(1):  # BLAS threads spinning against other work on a shared CPU cost 30x here
        return LogisticRegression(max_iter=300).fit(train.x.flatten(1).numpy(), train.y.numpy())
