"""A built-in network for tabular data, for ``modelshield train --dp`` when no ``--arch`` is given.

Images of the digits shape (1×8×8) get the demo's ``modelshield.demo:DigitsCNN``; flat feature vectors get
this MLP. Neither uses BatchNorm, so both train under DP-SGD as they are.
"""

from __future__ import annotations

from torch import Tensor, nn


class TabularMLP(nn.Module):
    """Two hidden layers with tanh: bounded activations suit clipped, noisy gradients.

    Papernot, Thakurta, Song, Chien, Erlingsson, "Tempered Sigmoid Activations for Deep Learning with
    Differential Privacy", AAAI 2021, https://arxiv.org/abs/2007.14191.
    """

    def __init__(self, in_features: int, num_classes: int, hidden: int = 32) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(in_features, hidden),
            nn.Tanh(),
            nn.Linear(hidden, hidden),
            nn.Tanh(),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x.flatten(1))
