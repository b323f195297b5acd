"""Clean and PGD robust accuracy, the two numbers a robust-training run is judged by."""

from __future__ import annotations

import torch
from torch import Tensor

from modelshield.attacks.evasion import PGD
from modelshield.attacks.losses import LossSpec
from modelshield.core.model import TorchModel


def accuracies(
    model: TorchModel,
    x: Tensor,
    y: Tensor,
    *,
    eps: float | None,
    steps: int = 10,
    loss: LossSpec = "ce",
    batch_size: int = 512,
    seed: int = 0,
) -> tuple[float, float | None]:
    """Clean accuracy and robust accuracy under L∞ PGD-``steps`` at ``eps`` (None when ``eps`` is None).

    A sample counts as robust when it is classified correctly both clean and attacked, as in
    ``modelshield assess``. The attack is seeded, so repeated evaluations agree and never draw
    from the global RNG a training run depends on. Counts stay on the device until the end.
    """
    correct = torch.zeros((), dtype=torch.long, device=x.device)
    robust = torch.zeros((), dtype=torch.long, device=x.device)
    attack = PGD(eps, steps=steps, loss=loss, seed=seed) if eps is not None else None
    for i in range(0, x.shape[0], batch_size):
        xb, yb = x[i : i + batch_size], y[i : i + batch_size]
        ok = model.predict(xb) == yb
        correct += ok.sum()
        if attack is not None:
            robust += (ok & (model.predict(attack(model, xb, yb)) == yb)).sum()
    n = max(int(x.shape[0]), 1)
    return int(correct) / n, (int(robust) / n if attack is not None else None)
