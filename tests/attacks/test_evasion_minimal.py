"""Minimum-norm attacks (C&W L2, DeepFool): they succeed, and with small perturbations."""

from __future__ import annotations

import pytest
import torch
from attack_helpers import assert_valid, l2, shifted_digits, tabular_model
from torch import Tensor

from modelshield.attacks.evasion import PGD, CarliniWagnerL2, DeepFool
from modelshield.core.datasets import Dataset
from modelshield.core.model import TorchModel


@pytest.fixture(scope="module")
def xy(digits_test: Dataset) -> tuple[Tensor, Tensor]:
    return digits_test.x[100:132], digits_test.y[100:132]


def fooled(model: TorchModel, x_adv: Tensor, y: Tensor) -> Tensor:
    return model.predict(x_adv) != y


def test_cw_finds_smaller_perturbations_than_pgd_l2(digits_model: TorchModel, xy) -> None:
    x, y = xy
    cw_adv = CarliniWagnerL2(steps=40, lr=0.05, binary_search_steps=4)(digits_model, x, y)
    pgd_adv = PGD(1.5, norm="l2", steps=10, seed=0)(digits_model, x, y)
    cw_ok, pgd_ok = fooled(digits_model, cw_adv, y), fooled(digits_model, pgd_adv, y)
    assert_valid(cw_adv, x, digits_model)
    assert int(cw_ok.sum()) >= int(pgd_ok.sum()) - 1
    both = cw_ok & pgd_ok
    assert int(both.sum()) >= 0.8 * len(y)
    assert float(l2(cw_adv, x)[both].median()) < 0.8 * float(l2(pgd_adv, x)[both].median())


def test_cw_returns_the_input_where_it_fails(digits_model: TorchModel, xy) -> None:
    x, y = xy[0][:8], xy[1][:8]
    x_adv = CarliniWagnerL2(c=1e-4, steps=2, binary_search_steps=1)(digits_model, x, y)
    unchanged = (x_adv == x).flatten(1).all(dim=1)
    assert bool((unchanged | fooled(digits_model, x_adv, y)).all())
    assert bool(unchanged.any())


def test_cw_targeted_and_other_bounds(digits_model: TorchModel, xy) -> None:
    model = shifted_digits(digits_model)
    x, target = xy[0][:16] * 2 - 1, (xy[1][:16] + 3) % 10
    x_adv = CarliniWagnerL2(steps=50, lr=0.1, binary_search_steps=3, targeted=True)(model, x, target)
    assert_valid(x_adv, x, model)
    assert float((model.predict(x_adv) == target).float().mean()) > 0.8


def test_deepfool_succeeds_with_small_steps(digits_model: TorchModel, xy) -> None:
    x, y = xy
    x_adv = DeepFool()(digits_model, x, y)
    assert_valid(x_adv, x, digits_model)
    ok = fooled(digits_model, x_adv, y)
    assert float(ok.float().mean()) >= 0.95
    # Within a small factor of PGD-L2's budget that breaks the same model.
    assert float(l2(x_adv, x)[ok].median()) < 1.0
    assert DeepFool.minimal and CarliniWagnerL2.minimal


@pytest.mark.parametrize(
    "make", [lambda: DeepFool(), lambda: CarliniWagnerL2(steps=30, lr=0.2)], ids=["deepfool", "cw"]
)
def test_minimal_attacks_on_flat_inputs(make) -> None:
    model, x, y = tabular_model()
    x_adv = make()(model, x, y)
    assert_valid(x_adv, x, model)
    assert float((model.predict(x_adv) != y).float().mean()) > 0.8
    assert x_adv.dtype == torch.float32
