"""Fixtures: one BLAS thread, and a digits CNN trained on P1's BadNets poison (3 % of the rows)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from threadpoolctl import threadpool_limits

from modelshield.attacks.poisoning import BadNets, PoisonResult
from modelshield.core.datasets import Dataset, sklearn_dataset
from modelshield.core.model import TorchModel
from modelshield.demo import train_digits_cnn


@pytest.fixture(scope="session", autouse=True)
def one_blas_thread() -> Iterator[None]:
    """scikit-learn's BLAS on one thread: on a shared 2-core machine a multi-threaded lbfgs fit of digits
    takes 30 s instead of 0.3 s."""
    with threadpool_limits(1):
        yield


@dataclass(frozen=True)
class Backdoored:
    model: TorchModel
    poison: PoisonResult  # the training set, 3 % BadNets into class 0
    x_ref: np.ndarray  # 150 clean test images: the defender's trusted set
    y_ref: np.ndarray
    x_eval: np.ndarray  # the other 300 test images
    y_eval: np.ndarray

    def asr(self, model: TorchModel) -> float:
        others = self.x_eval[self.y_eval != 0]
        triggered = torch.from_numpy(self.poison.trigger.apply(others))  # type: ignore[union-attr]
        return float((model.predict(triggered) == 0).float().mean())

    def accuracy(self, model: TorchModel) -> float:
        return float((model.predict(torch.from_numpy(self.x_eval)).numpy() == self.y_eval).mean())


@pytest.fixture(scope="session")
def backdoored(one_thread: None) -> Backdoored:
    train = sklearn_dataset("digits", "train")
    test = sklearn_dataset("digits", "test")
    poison = BadNets(target=0, rate=0.03, seed=0).poison(train.x.numpy(), train.y.numpy())
    net = train_digits_cnn(Dataset(torch.from_numpy(poison.x), torch.from_numpy(poison.y), "digits"), epochs=10)
    model = TorchModel(net, input_shape=(1, 8, 8), num_classes=10)
    x, y = test.x.numpy(), test.y.numpy()
    return Backdoored(model, poison, x[:150], y[:150], x[150:], y[150:])


def batches(x: np.ndarray, y: np.ndarray | None, size: int) -> list[tuple[np.ndarray, np.ndarray | None]]:
    """``x`` (and ``y``) cut into consecutive batches of ``size`` rows."""
    return [(x[i : i + size], None if y is None else y[i : i + size]) for i in range(0, len(x), size)]
