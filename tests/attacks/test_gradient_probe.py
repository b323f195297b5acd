"""Models without usable gradients: white-box attacks say so up front, black-box attacks still run."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from modelshield.attacks.errors import GradientUnavailableError
from modelshield.attacks.evasion import APGD, FGSM, PGD, CarliniWagnerL2, DeepFool, HopSkipJump, Square
from modelshield.attacks.gradients import probe_gradients
from modelshield.core.datasets import Dataset
from modelshield.core.errors import CapabilityError, ModelShieldError
from modelshield.core.model import TorchModel


class OneHot(nn.Module):
    """Returns the decision as a one-hot vector (argmax inside forward)."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: Tensor) -> Tensor:
        return F.one_hot(self.inner(x).argmax(dim=1), 10).float()


class Quantised(nn.Module):
    """Rounds its input to 8 levels first: a classic 'defence' whose gradient is zero everywhere."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: Tensor) -> Tensor:
        return self.inner(torch.round(x * 7) / 7)


class NoGrad(nn.Module):
    """Runs its network under torch.no_grad() inside forward."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: Tensor) -> Tensor:
        with torch.no_grad():
            return self.inner(x)


class Detached(nn.Module):
    """Detaches its input before the network."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: Tensor) -> Tensor:
        return self.inner(x.detach())


WRAPPERS = {"one-hot": OneHot, "round": Quantised, "no-grad": NoGrad, "detach": Detached}
WHITE_BOX = [
    lambda: FGSM(0.1),
    lambda: PGD(0.1, steps=3, seed=0),
    lambda: APGD(0.1, steps=3, seed=0),
    lambda: CarliniWagnerL2(steps=3),
    lambda: DeepFool(steps=3),
]


def _wrapped(kind: str, digits_model: TorchModel) -> TorchModel:
    return TorchModel(WRAPPERS[kind](digits_model.module), input_shape=(1, 8, 8), num_classes=10)


@pytest.fixture(scope="module")
def xy(digits_test: Dataset) -> tuple[Tensor, Tensor]:
    return digits_test.x[:30], digits_test.y[:30]


@pytest.mark.parametrize("kind", list(WRAPPERS))
@pytest.mark.parametrize("make", WHITE_BOX, ids=["fgsm", "pgd", "apgd", "cw", "deepfool"])
def test_white_box_attacks_say_not_applicable_up_front(kind: str, make, digits_model: TorchModel, xy) -> None:
    model = _wrapped(kind, digits_model)
    x, y = xy
    with pytest.raises(GradientUnavailableError) as info:
        make().run(model, x, y, batch_size=8)
    assert isinstance(info.value, CapabilityError) and isinstance(info.value, ModelShieldError)
    assert "black-box" in info.value.diagnostics()  # the hint points at what still works


@pytest.mark.parametrize("kind", ["one-hot", "no-grad", "detach"])
def test_a_single_batch_call_raises_the_same_error_not_an_autograd_crash(kind: str, digits_model, xy) -> None:
    x, y = xy
    with pytest.raises(GradientUnavailableError, match="not differentiable"):
        PGD(0.1, steps=2, seed=0)(_wrapped(kind, digits_model), x, y)


@pytest.mark.parametrize("kind", list(WRAPPERS))
def test_black_box_attacks_still_run(kind: str, digits_model: TorchModel, xy) -> None:
    model = _wrapped(kind, digits_model)
    x, y = xy
    for attack in (Square(0.3, n_queries=60, seed=0), HopSkipJump(max_queries=80, init_evals=10, seed=0)):
        result = attack.run(model, x, y, batch_size=8)
        assert result.success.shape == y.shape and result.queries is not None
        assert result.n_verified > 0  # the masking hides no robustness from a search


def test_a_normal_model_passes_the_probe(digits_model: TorchModel, xy) -> None:
    probe_gradients(digits_model, *xy)


def test_confidently_classified_samples_do_not_look_masked(digits_model: TorchModel, xy) -> None:
    """Cross-entropy gradients underflow to zero on very confident samples; the probe's margin does not."""
    confident = TorchModel(digits_model.module, input_shape=(1, 8, 8), num_classes=10, output_fn=lambda z: 1000 * z)
    x, y = xy
    xg = x.clone().requires_grad_(True)
    (ce_grad,) = torch.autograd.grad(F.cross_entropy(confident.logits(xg), y, reduction="sum"), xg)
    assert float((ce_grad.flatten(1).abs().amax(dim=1) == 0).float().mean()) > 0.5
    probe_gradients(confident, x, y)
