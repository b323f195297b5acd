"""Black-box attacks: Square (scores only) and HopSkipJump (labels only), with query accounting."""

from __future__ import annotations

import pytest
import torch
from attack_helpers import LabelOnly, accuracy, assert_valid, l2, tabular_model
from torch import Tensor

from modelshield.attacks.evasion import HopSkipJump, Square
from modelshield.core.datasets import Dataset
from modelshield.core.errors import CapabilityError
from modelshield.core.model import TorchModel


@pytest.fixture(scope="module")
def xy(digits_test: Dataset) -> tuple[Tensor, Tensor]:
    return digits_test.x[200:264], digits_test.y[200:264]


@pytest.mark.parametrize("norm,eps", [("linf", 0.3), ("l2", 2.0)])
def test_square_breaks_the_model_within_budget(norm: str, eps: float, digits_model: TorchModel, xy) -> None:
    x, y = xy
    attack = Square(eps, norm=norm, n_queries=200, seed=0)
    digits_model.reset_queries()
    x_adv = attack(digits_model, x, y)
    spent = digits_model.queries
    assert_valid(x_adv, x, digits_model, eps, norm)
    assert accuracy(digits_model, x_adv, y) < 0.2
    q = attack.queries_per_sample
    assert q.dtype == torch.int64 and q.shape == y.shape
    assert int(q.sum()) == spent and int(q.max()) <= 200 and int(q.min()) >= 1
    # Samples that were not fooled used the whole budget.
    assert bool((q[digits_model.predict(x_adv) == y] == 200).all())


def test_square_uses_no_gradients(digits_model: TorchModel, xy) -> None:
    x, y = xy[0][:8], xy[1][:8]
    x_adv = Square(0.3, n_queries=20, seed=1)(digits_model, x, y)
    assert not x_adv.requires_grad and Square.black_box


@pytest.mark.parametrize("norm,eps", [("linf", 0.5), ("l2", 1.0)])
def test_square_on_flat_inputs(norm: str, eps: float) -> None:
    model, x, y = tabular_model()
    x_adv = Square(eps, norm=norm, n_queries=150, seed=0)(model, x, y)
    assert_valid(x_adv, x, model, eps, norm)
    assert accuracy(model, x_adv, y) < 0.5


def test_square_targeted(digits_model: TorchModel, xy) -> None:
    x, target = xy[0][:32], (xy[1][:32] + 1) % 10
    x_adv = Square(0.3, n_queries=300, seed=0, targeted=True)(digits_model, x, target)
    assert_valid(x_adv, x, digits_model, 0.3)
    assert float((digits_model.predict(x_adv) == target).float().mean()) > 0.6


@pytest.fixture(scope="module")
def hsj_runs(digits_model: TorchModel, digits_test: Dataset) -> dict[int, tuple[Tensor, HopSkipJump, int]]:
    x, y = digits_test.x[300:312], digits_test.y[300:312]
    runs = {}
    for budget in (120, 600):
        model = LabelOnly(digits_model)
        attack = HopSkipJump(max_queries=budget, init_evals=30, seed=0)
        runs[budget] = (attack(model, x, y), attack, model.queries)
    return runs


def test_hopskipjump_uses_labels_only_and_finds_adversarials(
    digits_model: TorchModel, digits_test: Dataset, hsj_runs
) -> None:
    x, y = digits_test.x[300:312], digits_test.y[300:312]
    with pytest.raises(CapabilityError):
        LabelOnly(digits_model).logits(x)
    x_adv, attack, spent = hsj_runs[600]
    assert_valid(x_adv, x, digits_model)
    assert float((digits_model.predict(x_adv) != y).float().mean()) >= 0.9
    q = attack.queries_per_sample
    assert q.dtype == torch.int64 and int(q.sum()) <= spent


def test_hopskipjump_l2_shrinks_with_more_queries(digits_test: Dataset, hsj_runs) -> None:
    x = digits_test.x[300:312]
    small = float(l2(hsj_runs[120][0], x).median())
    large = float(l2(hsj_runs[600][0], x).median())
    assert large < 0.8 * small


def test_hopskipjump_with_eps_returns_only_small_adversarials(digits_model: TorchModel, digits_test: Dataset) -> None:
    x, y = digits_test.x[300:308], digits_test.y[300:308]
    model = LabelOnly(digits_model)
    attack = HopSkipJump(max_queries=150, eps=1.0, init_evals=20, seed=0)
    x_adv = attack(model, x, y)
    size = l2(x_adv, x)
    changed = size > 0
    assert float(size.max()) <= 1.0 + 1e-5
    assert bool((digits_model.predict(x_adv)[changed] != y[changed]).all())
    assert int(attack.queries_per_sample.sum()) == model.queries


def test_hopskipjump_linf(digits_model: TorchModel, digits_test: Dataset) -> None:
    x, y = digits_test.x[300:306], digits_test.y[300:306]
    x_adv = HopSkipJump("linf", max_queries=150, init_evals=20, seed=0)(LabelOnly(digits_model), x, y)
    assert_valid(x_adv, x, digits_model)
    assert float((digits_model.predict(x_adv) != y).float().mean()) >= 0.8
