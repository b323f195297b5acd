from __future__ import annotations

import pytest
import torch

from modelshield.attacks import losses
from modelshield.core.errors import InputError

LOGITS = torch.tensor([[3.0, 1.0, 0.0, -1.0], [0.0, 2.0, 5.0, 1.0]])
Y = torch.tensor([0, 1])


def test_margin_is_best_other_minus_label() -> None:
    assert torch.allclose(losses.margin(LOGITS, Y), torch.tensor([-2.0, 3.0]))


def test_dlr_matches_the_paper_formula() -> None:
    # -(z_y - max_{j≠y} z_j) / (z_π1 - z_π3)
    assert torch.allclose(losses.dlr(LOGITS, Y), torch.tensor([-2.0 / 3.0, 3.0 / 4.0]))


def test_dlr_is_invariant_to_shift_and_scale() -> None:
    assert torch.allclose(losses.dlr(3 * LOGITS + 7, Y), losses.dlr(LOGITS, Y), atol=1e-6)
    assert torch.allclose(losses.dlr_targeted(3 * LOGITS + 7, Y), losses.dlr_targeted(LOGITS, Y), atol=1e-6)


def test_targeted_objectives_increase_towards_the_target() -> None:
    target = torch.tensor([1, 1])
    near = torch.tensor([[1.0, 0.9, 0.0, -1.0]] * 2)
    hit = torch.tensor([[0.9, 1.0, 0.0, -1.0]] * 2)
    for name in losses.LOSS_NAMES:
        fn = losses.resolve_loss(name, targeted=True)
        assert (fn(hit, target) > fn(near, target)).all(), name


def test_callable_loss_is_negated_when_targeted() -> None:
    def custom(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return logits.gather(1, y[:, None]).squeeze(1)

    assert torch.equal(losses.resolve_loss(custom, targeted=False)(LOGITS, Y), torch.tensor([3.0, 2.0]))
    assert torch.equal(losses.resolve_loss(custom, targeted=True)(LOGITS, Y), torch.tensor([-3.0, -2.0]))


def test_unknown_loss_is_refused() -> None:
    with pytest.raises(InputError, match="unknown loss"):
        losses.resolve_loss("hinge", targeted=False)
