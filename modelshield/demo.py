"""The built-in demo: a small CNN on scikit-learn's digits, trained in seconds on a CPU.

Deterministic for a given seed, so the demo assessment's numbers are reproducible.
"""

from __future__ import annotations

import torch
from torch import nn

from modelshield.core.datasets import Dataset, sklearn_dataset
from modelshield.core.model import TorchModel

DEMO_INPUT_SHAPE = (1, 8, 8)
DEMO_NUM_CLASSES = 10


class DigitsCNN(nn.Module):
    """Two 3×3 convolutions, a max-pool and two dense layers: ~97% on digits' test split."""

    def __init__(self, num_classes: int = DEMO_NUM_CLASSES) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(32 * 4 * 4, 64), nn.ReLU(), nn.Linear(64, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def train_digits_cnn(train: Dataset, epochs: int = 15, seed: int = 0, lr: float = 3e-3) -> DigitsCNN:
    """Standard (non-robust) training with Adam; a few seconds on one core.

    Batches this small run faster on one thread than on several, and far faster when the
    machine is busy (idle worker threads spin), so training pins one thread and restores it.
    """
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    net = DigitsCNN()
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    n = len(train)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for _ in range(epochs):
            perm = torch.randperm(n, generator=gen)
            for i in range(0, n, 64):
                idx = perm[i : i + 64]
                opt.zero_grad(set_to_none=True)
                nn.functional.cross_entropy(net(train.x[idx]), train.y[idx]).backward()
                opt.step()
    finally:
        torch.set_num_threads(threads)
    return net.eval()


def demo_model_and_data(seed: int = 0) -> tuple[TorchModel, Dataset]:
    """Train the demo CNN on the digits training split; return it with the test split."""
    train = sklearn_dataset("digits", "train", seed=seed)
    test = sklearn_dataset("digits", "test", seed=seed)
    net = train_digits_cnn(train, seed=seed)
    model = TorchModel(net, input_shape=DEMO_INPUT_SHAPE, num_classes=DEMO_NUM_CLASSES, bounds=(0.0, 1.0))
    return model, test
