"""The longer sweep (marked slow): several owner keys, longer fine-tuning, heavier pruning, 5,000+ null trials."""

from __future__ import annotations

import hashlib

import pytest

from modelshield.core.datasets import Dataset
from modelshield.core.model import TorchModel
from modelshield.demo import demo_model_and_data
from modelshield.integrity.watermark import (
    TriggerSetWatermark,
    WeightWatermark,
    accuracy,
    calibrate,
    fine_tune,
    magnitude_prune,
)

pytestmark = pytest.mark.slow
FPR = 1e-3
OWNERS = [hashlib.sha256(f"slow-owner/{i}".encode()).digest() for i in range(3)]


@pytest.fixture(scope="module")
def five_clean(clean_models: list[TorchModel]) -> list[TorchModel]:
    return clean_models + [demo_model_and_data(seed)[0] for seed in range(len(clean_models), 5)]


@pytest.mark.parametrize("cls", [WeightWatermark, TriggerSetWatermark])
@pytest.mark.parametrize("key", OWNERS, ids=["owner0", "owner1", "owner2"])
def test_every_owner_survives_ten_epochs_and_half_pruning(
    cls: type, key: bytes, digits_model: TorchModel, train: Dataset, digits_test: Dataset, five_clean: list[TorchModel]
) -> None:
    wm = cls(key)
    marked = wm.embed(digits_model, train)
    assert accuracy(digits_model, digits_test) - accuracy(marked, digits_test) <= 0.01
    tuned = fine_tune(marked, train, epochs=10, lr=3e-3, seed=7)
    assert wm.verify(tuned, fpr=FPR).detected
    for ratio in (0.3, 0.5):
        assert wm.verify(magnitude_prune(marked, ratio), fpr=FPR).detected
    assert not any(wm.verify(m).detected for m in five_clean)


@pytest.mark.parametrize(("cls", "n_keys"), [(WeightWatermark, 1000), (TriggerSetWatermark, 200)])
def test_false_positive_rate_on_thousands_of_null_trials(cls: type, n_keys: int, five_clean: list[TorchModel]) -> None:
    cal = calibrate(cls, five_clean, n_keys=n_keys)
    for alpha in (FPR, 1e-2, 5e-2):
        assert cal.rate(alpha) <= alpha + 3 * (alpha * (1 - alpha) / cal.trials) ** 0.5
