"""Small models and data shared by the attack tests (fixtures come from tests/conftest.py)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from modelshield.attacks.evasion._norms import ball_class
from modelshield.core.model import Model, TorchModel


class LabelOnly(Model):
    """A decision-only view of a model: ``predict`` works, ``logits`` raises CapabilityError."""

    has_scores = False

    def __init__(self, inner: TorchModel) -> None:
        super().__init__()
        self.inner = inner
        self.input_shape = inner.input_shape
        self.num_classes = inner.num_classes
        self.bounds = inner.bounds

    def _scores(self, x: Tensor) -> Tensor:  # pragma: no cover - never reached: has_scores is False
        raise AssertionError("a decision-based attack asked for scores")

    def _labels(self, x: Tensor) -> Tensor:
        self.queries += int(x.shape[0])
        return self.inner._labels(x)


def shifted_digits(model: TorchModel) -> TorchModel:
    """The digits model re-wrapped to take inputs in [-1, 1] (maps them back to [0, 1] inside)."""
    return TorchModel(
        model.module, input_shape=model.input_shape, num_classes=10, bounds=(-1.0, 1.0), mean=-1.0, std=2.0
    )


def tabular_model(features: int = 12, classes: int = 4, seed: int = 0) -> tuple[TorchModel, Tensor, Tensor]:
    """A random MLP on flat (N, features) inputs in [0, 1], with its own predictions as labels."""
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(features, 32), nn.ReLU(), nn.Linear(32, classes))
    model = TorchModel(net, input_shape=(features,), num_classes=classes)
    x = torch.rand(48, features, generator=torch.Generator().manual_seed(seed))
    return model, x, model.predict(x)


def accuracy(model: Model, x: Tensor, y: Tensor) -> float:
    return float((model.predict(x) == y).float().mean())


def l2(x_adv: Tensor, x: Tensor) -> Tensor:
    return ball_class("l2").norm(x_adv - x)


def assert_valid(x_adv: Tensor, x: Tensor, model: Model, eps: float | None = None, norm: str = "linf") -> None:
    """Same shape, dtype and device; inside the bounds; within eps in ``norm`` when given."""
    assert x_adv.shape == x.shape and x_adv.dtype == x.dtype and x_adv.device == x.device
    lo, hi = model.bounds
    assert float(x_adv.min()) >= lo - 1e-6 and float(x_adv.max()) <= hi + 1e-6
    if eps is not None:
        size = ball_class(norm).norm(x_adv - x)
        assert float(size.max()) <= eps * (1 + 1e-5) + 1e-6, f"{norm} size {float(size.max())} > eps {eps}"
