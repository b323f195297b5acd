"""Benchmark models and data, trained in seconds with no download.

Three configurations, all on scikit-learn's bundled digits (1,797 images, no internet needed):

* ``mnist-cnn``  — the classic PyTorch MNIST-example CNN (conv32-conv64-maxpool-fc128-fc10) on
  digits resized to MNIST's layout (8×8 → 20×20 bilinear, padded to 28×28, like MNIST's centred
  20×20 box). The headline CPU configuration.
* ``digits-cnn`` — modelshield's own demo CNN (``modelshield.demo``) on the raw 8×8 digits.
  Small and fast: a smoke configuration.
* ``resnet18``   — a CIFAR-style ResNet-18 on digits resized to 32×32 and repeated over three
  channels; the GPU configuration (``--device cuda --amp bf16 --channels-last``).

Every loader returns an eval-mode ``nn.Module`` and a batch ``(x, y)`` of exactly ``batch``
test images in [0, 1] (test samples repeated in order when the split has fewer).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from modelshield.core.datasets import Dataset, sklearn_dataset
from modelshield.demo import DEMO_INPUT_SHAPE, DEMO_NUM_CLASSES, train_digits_cnn

MODELS = ("mnist-cnn", "digits-cnn", "resnet18")


class MnistCNN(nn.Module):
    """The PyTorch MNIST example's network: ~1.2 M parameters, 1×28×28 inputs."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, 1)
        self.conv2 = nn.Conv2d(32, 64, 3, 1)
        self.dropout1 = nn.Dropout(0.25)
        self.dropout2 = nn.Dropout(0.5)
        self.fc1 = nn.Linear(9216, 128)
        self.fc2 = nn.Linear(128, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        x = F.max_pool2d(x, 2)
        x = self.dropout1(torch.flatten(x, 1))
        x = self.dropout2(F.relu(self.fc1(x)))
        return self.fc2(x)


class _BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet18(nn.Module):
    """CIFAR-style ResNet-18 (3×3 stem, no max-pool), 32×32×3 inputs; no torchvision needed."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        layers, cin = [], 64
        for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            layers += [_BasicBlock(cin, cout, stride), _BasicBlock(cout, cout, 1)]
            cin = cout
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(512, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        out = self.layers(F.relu(self.bn1(self.conv1(x))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(out, 1), 1))


@dataclass
class BenchSetup:
    """A trained eval-mode network and one benchmark batch."""

    name: str
    module: nn.Module
    x: Tensor
    y: Tensor
    input_shape: tuple[int, ...]
    num_classes: int
    train_seconds: float
    description: str


def _to_mnist_layout(x: Tensor) -> Tensor:
    """8×8 digits → 20×20 (bilinear) centred in a 28×28 frame, as MNIST centres its digits."""
    x = F.interpolate(x, size=(20, 20), mode="bilinear", align_corners=False).clamp(0.0, 1.0)
    return F.pad(x, (4, 4, 4, 4))


def _to_cifar_layout(x: Tensor) -> Tensor:
    x = F.interpolate(x, size=(32, 32), mode="bilinear", align_corners=False).clamp(0.0, 1.0)
    return x.repeat(1, 3, 1, 1)


def _batch(x: Tensor, y: Tensor, batch: int) -> tuple[Tensor, Tensor]:
    reps = -(-batch // x.shape[0])
    return x.repeat((reps,) + (1,) * (x.ndim - 1))[:batch].contiguous(), y.repeat(reps)[:batch].contiguous()


def _train(net: nn.Module, x: Tensor, y: Tensor, epochs: int, seed: int, lr: float, device: torch.device) -> None:
    gen = torch.Generator().manual_seed(seed)
    net.to(device).train()
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    x, y = x.to(device), y.to(device)
    for _ in range(epochs):
        perm = torch.randperm(x.shape[0], generator=gen).to(device)
        for i in range(0, x.shape[0], 64):
            idx = perm[i : i + 64]
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(net(x[idx]), y[idx]).backward()
            opt.step()
    net.eval()


def load(
    name: str, batch: int = 256, seed: int = 0, device: str | torch.device = "cpu", epochs: int | None = None
) -> BenchSetup:
    """Train the named benchmark network (seconds) and return it with a ``batch``-sized test batch.

    ``epochs`` overrides the default training length (0: untrained, for smoke tests).
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    device = torch.device(device)
    torch.manual_seed(seed)
    train: Dataset = sklearn_dataset("digits", "train", seed=seed)
    test: Dataset = sklearn_dataset("digits", "test", seed=seed)
    t0 = time.perf_counter()
    if name == "digits-cnn":
        net: nn.Module = train_digits_cnn(train, seed=seed, **({} if epochs is None else {"epochs": epochs}))
        xt, input_shape = test.x, DEMO_INPUT_SHAPE
        desc = "modelshield demo CNN (conv16-conv32-maxpool-fc64-fc10), digits 1×8×8"
    elif name == "mnist-cnn":
        net = MnistCNN()
        _train(
            net,
            _to_mnist_layout(train.x),
            train.y,
            epochs=3 if epochs is None else epochs,
            seed=seed,
            lr=1e-3,
            device=torch.device("cpu"),
        )
        xt, input_shape = _to_mnist_layout(test.x), (1, 28, 28)
        desc = "PyTorch MNIST-example CNN (conv32-conv64-maxpool-fc128-fc10), digits resized to 1×28×28"
    else:
        net = ResNet18()
        _train(
            net,
            _to_cifar_layout(train.x),
            train.y,
            epochs=3 if epochs is None else epochs,
            seed=seed,
            lr=1e-3,
            device=device,
        )
        xt, input_shape = _to_cifar_layout(test.x), (3, 32, 32)
        desc = "CIFAR-style ResNet-18, digits resized to 3×32×32"
    train_s = time.perf_counter() - t0
    net = net.to(device).eval()
    x, y = _batch(xt, test.y, batch)
    return BenchSetup(name, net, x.to(device), y.to(device), input_shape, DEMO_NUM_CLASSES, train_s, desc)
