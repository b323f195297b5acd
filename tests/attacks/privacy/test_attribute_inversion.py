"""Attribute inference recovers a planted attribute better than its prior; MI-Face raises the target class's
confidence; feature sensitivity ranks features as the model weighs them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from privacy_helpers import Audit
from scipy.stats import spearmanr
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from torch import nn

from modelshield.attacks.errors import GradientUnavailableError
from modelshield.attacks.privacy import AttributeInference, MIFace, feature_sensitivity
from modelshield.core.adapters import SklearnModel
from modelshield.core.datasets import Dataset
from modelshield.core.errors import InputError
from modelshield.core.model import TorchModel
from modelshield.defenses.training import StandardTraining, TrainConfig

WEAK = [9, 11, 14, 18, 19]  # fractal dimension, texture/smoothness/symmetry/fractal-dimension errors
SENSITIVE = len(WEAK)


@pytest.fixture(scope="module")
def planted() -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """Breast cancer's five least telling features in [0, 1], plus a binary 'sensitive' column equal to the label
    for 80 % of patients (with all 30 features the model predicts without it and ignores it)."""
    x, y = load_breast_cancer(return_X_y=True)
    x = x[:, WEAK]
    x = (x - x.min(0)) / (x.max(0) - x.min(0))
    rng = np.random.default_rng(0)
    s = np.where(rng.random(len(y)) < 0.8, y, 1 - y).astype(np.float64)
    idx = rng.permutation(len(y))[:200]
    xs = np.hstack([x, s[:, None]])[idx].astype(np.float32)
    return torch.from_numpy(xs), torch.from_numpy(y[idx]), s[idx]


def test_attribute_inference_beats_the_prior_on_a_planted_attribute(
    planted: tuple[torch.Tensor, torch.Tensor, np.ndarray],
) -> None:
    x, y, s = planted
    torch.manual_seed(0)
    model = TorchModel(
        nn.Sequential(nn.Linear(SENSITIVE + 1, 64), nn.ReLU(), nn.Linear(64, 2)),
        input_shape=(SENSITIVE + 1,),
        num_classes=2,
    )
    cfg = TrainConfig(epochs=80, batch_size=200, lr=2e-2, val_fraction=0.0, progress=False)
    StandardTraining().fit(model, Dataset(x, y, "breast_cancer+s"), cfg)
    hidden = x.clone()
    hidden[:, SENSITIVE] = 0.5  # what the attacker holds: everything but the sensitive column
    result = AttributeInference(SENSITIVE, values=[0.0, 1.0], prior=[(s == 0).mean(), (s == 1).mean()]).infer(
        model, hidden, y
    )
    assert result.prior_accuracy(s) == pytest.approx(max((s == 0).mean(), (s == 1).mean()))
    assert result.accuracy(s) > result.prior_accuracy(s) + 0.1
    assert result.posterior.shape == (200, 2) and np.allclose(result.posterior.sum(axis=1), 1)
    with pytest.raises(InputError, match="distinct values"):
        AttributeInference(0).infer(model, x, y)  # a continuous column needs candidate values


def test_mi_face_raises_target_class_confidence(overfit: TorchModel) -> None:
    result = MIFace(steps=200).invert(overfit, torch.arange(10))
    improbable = result.confidence_before < 0.5  # from the grey middle image most classes start near 0
    assert improbable.sum() >= 5
    assert (result.confidence_after[improbable] > 0.9).all()
    assert (result.confidence_after >= result.confidence_before).all()
    assert float(result.x.min()) >= 0 and float(result.x.max()) <= 1


def test_mi_face_needs_gradients(audit: Audit) -> None:
    clf = LogisticRegression(max_iter=500).fit(audit.x.numpy(), audit.y.numpy())
    with pytest.raises(GradientUnavailableError):
        MIFace().invert(SklearnModel(clf, input_shape=(64,)), torch.arange(3))


def test_sensitivity_ranks_features_as_a_linear_model_weighs_them(
    planted: tuple[torch.Tensor, torch.Tensor, np.ndarray],
) -> None:
    x, y, _ = planted
    clf = LogisticRegression(C=10.0, max_iter=2000).fit(x.numpy(), y.numpy())
    sens = feature_sensitivity(SklearnModel(clf, input_shape=(SENSITIVE + 1,)), x)  # black box: finite differences
    assert sens.share.sum() == pytest.approx(1.0)
    assert spearmanr(sens.sensitivity, np.abs(clf.coef_[0])).statistic > 0.9
    assert sens.ranking()[0] == int(np.argmax(np.abs(clf.coef_[0])))
