"""The learning task every client and the server share: the network, the data, local training, scoring.

Any ``TorchModel`` whose network is built from an importable class (``arch='package.module:Class'``)
takes part; Flower moves its parameters as NumPy arrays in ``state_dict`` order.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from torch import nn

from modelshield.core.datasets import Dataset, load_dataset
from modelshield.core.errors import InputError
from modelshield.core.loading import build_arch
from modelshield.core.model import TorchModel
from modelshield.privacy.federated.partition import partition
from modelshield.privacy.federated.settings import FederatedSettings


class DigitsMLP(nn.Module):
    """A small MLP for 8×8 digits: 64 → hidden → 10 (the demo's network)."""

    def __init__(self, hidden: int = 64, num_classes: int = 10, in_features: int = 64) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Flatten(), nn.Linear(in_features, hidden), nn.ReLU(), nn.Linear(hidden, num_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


@functools.cache
def _data(spec: str) -> Dataset:
    return load_dataset(spec)


def train_data(settings: FederatedSettings) -> Dataset:
    """The training set all partitions are cut from (cached per process)."""
    return _data(settings.train)


def test_data(settings: FederatedSettings) -> Dataset:
    """The server's held-out test set (cached per process)."""
    return _data(settings.test)


def client_data(settings: FederatedSettings, partition_id: int) -> Dataset:
    """Client ``partition_id``'s shard of the training set, the same in every process for the same seed."""
    if not 0 <= partition_id < settings.clients:
        raise InputError(f"partition id {partition_id} is outside 0..{settings.clients - 1}")
    data = train_data(settings)
    parts = partition(
        data.y.numpy(), settings.clients, scheme=settings.partition, alpha=settings.alpha, seed=settings.seed
    )
    rows = torch.from_numpy(parts[partition_id])
    return Dataset(data.x[rows], data.y[rows], f"{data.name}[client {partition_id}]", data.bounds, data.class_names)


def build_model(settings: FederatedSettings, seed: int | None = None) -> TorchModel:
    """A freshly initialised network for the task (seeded, so every process starts from the same weights)."""
    data = test_data(settings)
    torch.manual_seed(settings.seed if seed is None else seed)
    net = build_arch(settings.arch, settings.arch_kwargs)
    num_classes = int(max(data.y.max().item(), train_data(settings).y.max().item())) + 1
    return TorchModel(net, input_shape=tuple(data.x.shape[1:]), num_classes=num_classes, bounds=data.bounds)


def get_arrays(model: TorchModel) -> list[np.ndarray]:
    """The parameters and buffers as NumPy arrays, in ``state_dict`` order."""
    return [t.detach().cpu().numpy().copy() for t in model.module.state_dict().values()]


def set_arrays(model: TorchModel, arrays: list[np.ndarray]) -> None:
    """Load arrays from ``get_arrays`` order back into the network."""
    keys = list(model.module.state_dict())
    if len(keys) != len(arrays):
        raise InputError(f"the model has {len(keys)} tensors and the server sent {len(arrays)}")
    state = {k: torch.from_numpy(np.asarray(a)).to(model.device) for k, a in zip(keys, arrays, strict=True)}
    model.module.load_state_dict(state, strict=True)


def train_locally(model: TorchModel, x: torch.Tensor, y: torch.Tensor, settings: FederatedSettings, seed: int) -> float:
    """SGD with momentum 0.9 (fresh each round) on the client's data for ``local_epochs``; returns the last epoch's loss."""
    from modelshield.defenses.training import StandardTraining, TrainConfig

    cfg = TrainConfig(
        epochs=settings.local_epochs,
        batch_size=settings.batch_size,
        lr=settings.lr,
        optimizer="sgd",
        momentum=0.9,
        val_fraction=0.0,
        progress=False,
        seed=seed,
    )
    history = StandardTraining().fit(model, Dataset(x, y, "client"), cfg).history
    return float(history[-1].loss) if history else float("nan")


def accuracy(model: TorchModel, x: torch.Tensor, y: torch.Tensor) -> float:
    """Top-1 accuracy on (x, y)."""
    with torch.no_grad():
        pred = model.module(x.to(model.device)).argmax(dim=1).cpu()
    return float((pred == y).float().mean().item())
