"""White-box watermark on the demo CNN: detected, cheap, robust, and silent on models that never saw the key."""

from __future__ import annotations

import pytest
import torch
from watermark_keys import OTHER_KEY, OWNER_KEY

from modelshield.core.datasets import Dataset
from modelshield.core.errors import CapabilityError, InputError
from modelshield.core.model import TorchModel
from modelshield.integrity.watermark import WeightWatermark, accuracy, calibrate, fine_tune, magnitude_prune

FPR = 1e-3


def test_embedded_watermark_is_read_back(
    weight_marked: TorchModel, digits_model: TorchModel, digits_test: Dataset
) -> None:
    wm = WeightWatermark(OWNER_KEY)
    verdict = wm.verify(weight_marked)
    assert verdict.detected and verdict.matched == verdict.total == 64 and verdict.p_value <= FPR
    assert wm.target_layer(weight_marked.module) == "features.2"  # conv1's 9 averaged weights are too few
    _, message = wm._read(weight_marked)
    assert torch.equal(wm.extract(weight_marked), message)
    assert accuracy(digits_model, digits_test) - accuracy(weight_marked, digits_test) <= 0.01


def test_embedding_leaves_the_original_untouched(digits_model: TorchModel, weight_marked: TorchModel) -> None:
    assert weight_marked is not digits_model and weight_marked.module is not digits_model.module
    assert not WeightWatermark(OWNER_KEY).verify(digits_model).detected
    assert not any(p.requires_grad for p in weight_marked.module.parameters())


def test_unwatermarked_models_and_other_keys_never_verify(
    clean_models: list[TorchModel], weight_marked: TorchModel
) -> None:
    for model in clean_models:
        assert not WeightWatermark(OWNER_KEY).verify(model).detected
    assert not WeightWatermark(OTHER_KEY).verify(weight_marked).detected


def test_survives_fine_tuning_and_pruning(
    weight_marked: TorchModel, digits_model: TorchModel, train: Dataset, digits_test: Dataset
) -> None:
    wm = WeightWatermark(OWNER_KEY)
    tuned = fine_tune(weight_marked, train, epochs=5, lr=3e-3, seed=1)  # the demo's own training rate
    pruned = magnitude_prune(weight_marked, 0.3)
    for attacked in (tuned, pruned):
        assert wm.verify(attacked, fpr=FPR).detected
        assert accuracy(digits_model, digits_test) - accuracy(attacked, digits_test) <= 0.015
    zeros = sum(int((p == 0).sum()) for n, p in pruned.module.named_parameters() if n.endswith("weight"))
    total = sum(p.numel() for n, p in pruned.module.named_parameters() if n.endswith("weight"))
    assert zeros / total == pytest.approx(0.3, abs=0.01)


def test_empirical_false_positive_rate_matches_the_null(
    clean_models: list[TorchModel], weight_marked: TorchModel
) -> None:
    """400 unrelated keys against 2 clean models and one marked with another key: 1,200 null trials."""
    cal = calibrate(lambda key: WeightWatermark(key), [*clean_models, weight_marked], n_keys=400)
    assert cal.trials == 1200
    mean, var = cal.match_mean_var()
    assert abs(mean - 32) < 0.5 and abs(var - 16) < 2.5  # Binomial(64, 1/2): mean 32, variance 16
    assert cal.rate(0.05) <= 0.05 + 3 * (0.05 * 0.95 / 1200) ** 0.5
    assert cal.rate(FPR) <= 4 / 1200  # 99.9% of Binomial(1200, 1e-3) falls at or below 4 false alarms


def test_bad_parameters_are_refused(digits_model: TorchModel) -> None:
    with pytest.raises(InputError, match="no conv or linear layer named"):
        WeightWatermark(OWNER_KEY, layer="features.1").verify(digits_model)
    with pytest.raises(InputError, match="too few"):
        WeightWatermark(OWNER_KEY, layer="features.0").verify(digits_model)
    with pytest.raises(InputError, match="2048 averaged weights"):
        WeightWatermark(OWNER_KEY, bits=1024).verify(digits_model)
    with pytest.raises(InputError):
        WeightWatermark(OWNER_KEY, bits=0)


def test_black_box_models_cannot_carry_a_weight_watermark(digits_test: Dataset) -> None:
    from sklearn.linear_model import LogisticRegression

    from modelshield.core.adapters import SklearnModel

    est = LogisticRegression(max_iter=200).fit(digits_test.x.flatten(1).numpy(), digits_test.y.numpy())
    model = SklearnModel(est, input_shape=(1, 8, 8), num_classes=10)
    with pytest.raises(CapabilityError):
        WeightWatermark(OWNER_KEY).verify(model)
