"""TorchModel: normalisation inside the adapter, the bf16/channels-last fast path, input checks."""

from __future__ import annotations

import pytest
import torch

from modelshield.attacks.evasion import PGD
from modelshield.core.datasets import Dataset
from modelshield.core.errors import InputError
from modelshield.core.model import TorchModel


def test_normalisation_lives_in_the_adapter(digits_model: TorchModel, digits_test: Dataset) -> None:
    """A net trained on normalised inputs, wrapped with mean/std, sees exactly what it was trained on."""
    mean, std = 0.3, 0.4
    wrapped = TorchModel(digits_model.module, input_shape=(1, 8, 8), num_classes=10, mean=[mean], std=[std])
    x = digits_test.x[:32]
    with torch.no_grad():
        expected = digits_model.module((x - mean) / std)
    torch.testing.assert_close(wrapped.logits(x), expected)
    x_adv = PGD(eps=0.05, steps=3)(wrapped, x, digits_test.y[:32])
    assert float((x_adv - x).abs().max()) <= 0.05 + 1e-6  # ε stays in input units, not normalised units


def test_bf16_channels_last_fast_path_agrees_with_fp32(digits_model: TorchModel, digits_test: Dataset) -> None:
    fast = TorchModel(digits_model.module, input_shape=(1, 8, 8), num_classes=10)
    fast.use_fast_path(autocast_dtype=torch.bfloat16, channels_last=True)
    x, y = digits_test.x[:200], digits_test.y[:200]
    scores = fast.logits(x)
    assert scores.dtype == torch.float32
    assert (fast.predict(x) == digits_model.predict(x)).float().mean() > 0.97
    robust_fp32 = (digits_model.predict(PGD(eps=0.1, steps=10, seed=0)(digits_model, x, y)) == y).float().mean()
    robust_bf16 = (digits_model.predict(PGD(eps=0.1, steps=10, seed=0)(fast, x, y)) == y).float().mean()
    assert abs(float(robust_fp32 - robust_bf16)) <= 0.05


def test_bad_inputs_are_named(digits_model: TorchModel, digits_test: Dataset) -> None:
    with pytest.raises(InputError, match="bounds"):
        digits_model.check_inputs(digits_test.x * 3)
    with pytest.raises(InputError, match="empty"):
        TorchModel(digits_model.module, input_shape=(1, 8, 8), num_classes=10, bounds=(1.0, 0.0))
