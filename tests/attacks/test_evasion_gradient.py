"""FGSM, PGD and APGD on the digits CNN: strength, budgets, bounds, targets, restarts, losses."""

from __future__ import annotations

import copy

import pytest
import torch
from attack_helpers import accuracy, assert_valid, shifted_digits, tabular_model
from torch import Tensor

from modelshield.attacks.evasion import APGD, FGSM, PGD
from modelshield.core.datasets import Dataset
from modelshield.core.model import TorchModel


@pytest.fixture(scope="module")
def xy(digits_test: Dataset) -> tuple[Tensor, Tensor]:
    return digits_test.x[:96], digits_test.y[:96]


def test_pgd_linf_large_eps_breaks_the_model_small_eps_barely_moves_it(
    digits_model: TorchModel, xy: tuple[Tensor, Tensor]
) -> None:
    x, y = xy
    clean = accuracy(digits_model, x, y)
    assert accuracy(digits_model, PGD(0.3, steps=10, seed=0)(digits_model, x, y), y) < 0.10
    assert accuracy(digits_model, PGD(0.01, steps=10, seed=0)(digits_model, x, y), y) > clean - 0.05


@pytest.mark.parametrize("norm,eps", [("linf", 0.1), ("l2", 0.8)])
@pytest.mark.parametrize("make", [FGSM, PGD, APGD], ids=["fgsm", "pgd", "apgd"])
def test_budget_and_bounds_are_respected(make: type, norm: str, eps: float, digits_model: TorchModel, xy) -> None:
    x, y = xy
    kwargs = {} if make is FGSM else {"steps": 5, "seed": 0}
    x_adv = make(eps, norm=norm, **kwargs)(digits_model, x, y)
    assert_valid(x_adv, x, digits_model, eps, norm)
    assert accuracy(digits_model, x_adv, y) < accuracy(digits_model, x, y)


@pytest.mark.parametrize("make", [FGSM, PGD, APGD], ids=["fgsm", "pgd", "apgd"])
def test_other_bounds_are_used_not_zero_one(make: type, digits_model: TorchModel, xy) -> None:
    model = shifted_digits(digits_model)
    x, y = xy[0] * 2 - 1, xy[1]
    assert accuracy(model, x, y) == accuracy(digits_model, xy[0], y)
    kwargs = {} if make is FGSM else {"steps": 5, "seed": 0}
    x_adv = make(0.4, **kwargs)(model, x, y)
    assert_valid(x_adv, x, model, 0.4, "linf")
    assert float(x_adv.min()) < -0.5  # pixels below 0 were reachable and used
    assert accuracy(model, x_adv, y) < 0.5


def test_targeted_pgd_hits_the_target(digits_model: TorchModel, xy) -> None:
    x, y = xy
    target = (y + 1) % 10
    x_adv = PGD(0.3, steps=20, targeted=True, seed=0)(digits_model, x, target)
    assert float((digits_model.predict(x_adv) == target).float().mean()) > 0.8


def test_restarts_never_hurt(digits_model: TorchModel, xy) -> None:
    x, y = xy
    once = PGD(0.08, steps=5, seed=3)(digits_model, x, y)
    thrice = PGD(0.08, steps=5, restarts=3, seed=3)(digits_model, x, y)
    fooled_once = digits_model.predict(once) != y
    fooled_thrice = digits_model.predict(thrice) != y
    assert bool((fooled_thrice | ~fooled_once).all())  # the first restart is the same run
    assert int(fooled_thrice.sum()) >= int(fooled_once.sum())


def test_apgd_is_at_least_as_strong_as_pgd(digits_model: TorchModel, xy) -> None:
    x, y = xy
    pgd = accuracy(digits_model, PGD(0.1, steps=20, seed=0)(digits_model, x, y), y)
    apgd = APGD(0.1, steps=20, seed=0)
    assert apgd.name == "apgd-ce" and APGD(0.1, loss="dlr").name == "apgd-dlr"
    assert accuracy(digits_model, apgd(digits_model, x, y), y) <= pgd + 0.03


def test_apgd_dlr_breaks_the_model(digits_model: TorchModel, xy) -> None:
    x, y = xy
    x_adv = APGD(0.2, steps=20, loss="dlr", seed=0)(digits_model, x, y)
    assert_valid(x_adv, x, digits_model, 0.2)
    assert accuracy(digits_model, x_adv, y) < 0.2


def test_custom_callable_loss_is_used(digits_model: TorchModel, xy) -> None:
    x, y = xy[0][:16], xy[1][:16]
    calls = []

    def push_to_class_3(logits: Tensor, labels: Tensor) -> Tensor:
        calls.append(labels.shape[0])
        return logits[:, 3]  # maximised: the attack should push everything to class 3

    x_adv = PGD(0.3, steps=10, loss=push_to_class_3, seed=0)(digits_model, x, y)
    assert calls == [16] * 10
    assert float((digits_model.predict(x_adv) == 3).float().mean()) > 0.8


def test_pgd_spends_exactly_one_forward_per_step(digits_model: TorchModel, xy) -> None:
    x, y = xy[0][:8], xy[1][:8]
    before = digits_model.queries
    PGD(0.1, steps=7)(digits_model, x, y)
    assert digits_model.queries - before == 7 * 8


def test_seed_makes_runs_reproducible(digits_model: TorchModel, xy) -> None:
    x, y = xy[0][:16], xy[1][:16]
    a = PGD(0.1, steps=3, seed=5)(digits_model, x, y)
    b = PGD(0.1, steps=3, seed=5)(digits_model, x, y)
    assert torch.equal(a, b)


def test_inputs_are_left_untouched_and_dtype_kept(digits_model: TorchModel, xy) -> None:
    x, y = xy[0][:16].clone(), xy[1][:16]
    x_before = x.clone()
    model64 = TorchModel(copy.deepcopy(digits_model.module).double(), input_shape=(1, 8, 8), num_classes=10)
    for attack in (FGSM(0.1), PGD(0.1, steps=3), APGD(0.1, steps=3)):
        attack(digits_model, x, y)
        assert torch.equal(x, x_before)
        assert_valid(attack(model64, x.double(), y), x.double(), model64, 0.1)


@pytest.mark.parametrize("make", [FGSM, PGD, APGD], ids=["fgsm", "pgd", "apgd"])
def test_flat_inputs_work(make: type) -> None:
    model, x, y = tabular_model()
    x_adv = make(0.5, norm="l2")(model, x, y)
    assert_valid(x_adv, x, model, 0.5, "l2")
    assert accuracy(model, x_adv, y) < 1.0


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_pgd_runs_within_5_percent_of_the_plain_pytorch_floor() -> None:
    import time

    from modelshield.demo import DigitsCNN

    net = torch.nn.Sequential(torch.nn.Upsample(scale_factor=4), DigitsCNN()).cuda()
    model = TorchModel(net, input_shape=(1, 8, 8), num_classes=10)
    x = torch.rand(4096, 1, 8, 8, device="cuda")
    y = torch.randint(0, 10, (4096,), device="cuda")
    steps = 50

    def floor() -> None:
        xa = x.clone()
        for _ in range(steps):
            xa.requires_grad_(True)
            loss = torch.nn.functional.cross_entropy(model.logits(xa), y, reduction="none").sum()
            torch.autograd.grad(loss, xa)
            xa = xa.detach()

    def timed(fn) -> float:
        fn()
        torch.cuda.synchronize()
        best = float("inf")
        for _ in range(5):
            t0 = time.perf_counter()
            fn()
            torch.cuda.synchronize()
            best = min(best, time.perf_counter() - t0)
        return best

    attack = PGD(8 / 255, steps=steps)
    assert timed(lambda: attack(model, x, y)) <= 1.05 * timed(floor)
