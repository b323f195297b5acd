"""A served digits CNN for the red-team tests: trained for one epoch (the gateway needs a real model, not a good
one), on one torch thread and one BLAS thread — the machine is shared."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from threadpoolctl import threadpool_limits

from modelshield.core.datasets import sklearn_dataset
from modelshield.core.loading import save_torch_model
from modelshield.demo import train_digits_cnn
from modelshield.serve.runtime import file_digest


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(1):
        yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def victim_weights(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The demo CNN's weights after one epoch on the digits training split, and their digest."""
    torch.set_num_threads(1)
    net = train_digits_cnn(sklearn_dataset("digits", "train", seed=0), epochs=1)
    path = tmp_path_factory.mktemp("victim") / "model.safetensors"
    save_torch_model(net, path)
    return path, file_digest(path)
