"""Bad parameters fail early, in the constructor, with InputError; inputs are checked at call."""

from __future__ import annotations

import pytest
import torch

from modelshield.attacks import evasion
from modelshield.attacks.evasion import APGD, FGSM, PGD, CarliniWagnerL2, DeepFool, HopSkipJump, Square
from modelshield.core.errors import InputError
from modelshield.core.model import TorchModel

BAD = [
    (lambda: FGSM(-0.1), "eps"),
    (lambda: PGD(0.1, steps=0), "steps"),
    (lambda: PGD(0.1, norm="l1"), "norm"),  # type: ignore[arg-type]
    (lambda: PGD(0.1, loss="hinge"), "loss"),
    (lambda: PGD(0.1, restarts=0), "restarts"),
    (lambda: PGD(0.1, alpha=-1.0), "alpha"),
    (lambda: PGD(float("nan")), "eps"),
    (lambda: APGD(0.1, rho=1.5), "rho"),
    (lambda: APGD(0.1, steps=0), "steps"),
    (lambda: CarliniWagnerL2(c=0.0), "c"),
    (lambda: CarliniWagnerL2(binary_search_steps=0), "binary_search_steps"),
    (lambda: CarliniWagnerL2(lr=-1.0), "lr"),
    (lambda: DeepFool(candidates=1), "candidates"),
    (lambda: DeepFool(overshoot=-0.1), "overshoot"),
    (lambda: Square(0.1, n_queries=1), "n_queries"),
    (lambda: Square(0.1, p_init=0.0), "p_init"),
    (lambda: Square(-1.0), "eps"),
    (lambda: HopSkipJump("l1"), "norm"),  # type: ignore[arg-type]
    (lambda: HopSkipJump(max_queries=0), "max_queries"),
    (lambda: HopSkipJump(eps=-1.0), "eps"),
]


@pytest.mark.parametrize("make,word", BAD, ids=[w for _, w in BAD])
def test_bad_parameters_raise_input_error(make, word: str) -> None:
    with pytest.raises(InputError, match=word):
        make()


def test_inputs_are_checked(digits_model: TorchModel) -> None:
    x = torch.rand(4, 1, 8, 8)
    with pytest.raises(InputError, match="bounds"):
        PGD(0.1)(digits_model, x * 3, torch.zeros(4, dtype=torch.long))
    with pytest.raises(InputError, match="labels"):
        Square(0.1)(digits_model, x, torch.full((4,), 12))


def test_public_names() -> None:
    assert sorted(evasion.__all__) == sorted(
        ["APGD", "FGSM", "PGD", "CarliniWagnerL2", "DeepFool", "HopSkipJump", "Square"]
    )
    for name in evasion.__all__:
        cls = getattr(evasion, name)
        assert cls.__doc__ and "arxiv.org" in cls.__doc__, name
    assert Square.black_box and HopSkipJump.black_box and not PGD.black_box
