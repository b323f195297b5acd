"""Feature collision on digits: correctly labelled poisons make a fine-tuned head misread chosen victims."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch
from poison_data import Arrays
from torch import nn

from modelshield.attacks.poisoning import FeatureCollision, evaluate_poisoning
from modelshield.core.errors import InputError
from modelshield.core.model import TorchModel


def _extractor(model: TorchModel) -> nn.Module:
    """The demo CNN without its last layer: the frozen, shared feature extractor of transfer learning."""
    net = model.module
    return nn.Sequential(net.features, *list(net.head)[:-1]).eval()


def _fine_tune_head(features: nn.Module, x: np.ndarray, y: np.ndarray) -> nn.Module:
    """Retrain only a new last layer on (x, y), full batch, as a transfer-learning victim does."""
    torch.manual_seed(0)
    with torch.no_grad():
        f = features(torch.from_numpy(x))
    head = nn.Linear(f.shape[1], 10)
    opt = torch.optim.Adam(head.parameters(), lr=1e-2)
    labels = torch.from_numpy(y)
    for _ in range(200):
        opt.zero_grad()
        nn.functional.cross_entropy(head(f), labels).backward()
        opt.step()
    return nn.Sequential(features, head).eval()


@pytest.mark.parametrize(("victim_class", "target"), [(2, 6), (4, 9)])
def test_feature_collision_flips_the_victim_without_touching_labels(
    digits_arrays: Arrays, digits_model: TorchModel, victim_class: int, target: int
) -> None:
    """The paper's one-victim setting: 25 correctly labelled poisons (1.9% of the set) per victim."""
    x, y, xt, yt = digits_arrays
    features = _extractor(digits_model)
    for p in features.parameters():
        p.requires_grad_(False)
    victim = xt[np.flatnonzero(yt == victim_class)[:1]]
    result = FeatureCollision(features, target, victim, rate=25 / len(y), seed=0).poison(x, y)

    assert result.poisoned.sum() == 25 and (y[result.poisoned] == target).all()
    assert np.array_equal(result.y, y)  # clean label: nothing for a label audit to find
    assert not (result.x != x)[~result.poisoned].any()
    assert result.x.min() >= 0 and result.x.max() <= 1
    assert result.victims is not None and result.trigger is None

    def predict(net: nn.Module) -> Callable[[np.ndarray], np.ndarray]:
        return lambda a: net(torch.from_numpy(a)).argmax(1).detach().numpy()

    ev = evaluate_poisoning(predict(_fine_tune_head(features, result.x, result.y)), result, xt, yt)
    base = evaluate_poisoning(predict(_fine_tune_head(features, x, y)), result, xt, yt)
    assert base.attack_success_rate == 0.0  # the clean fine-tune reads the victim right
    assert ev.attack_success_rate == 1.0 and ev.n_attacked == 1
    assert ev.clean_accuracy >= base.clean_accuracy - 0.02


def test_feature_collision_parameters_are_checked(digits_arrays: Arrays) -> None:
    x, y, xt, _ = digits_arrays
    ident = nn.Flatten()
    with pytest.raises(InputError, match="beta"):
        FeatureCollision(ident, 0, xt[:1], 0.1, beta=0)
    with pytest.raises(InputError, match="opacity"):
        FeatureCollision(ident, 0, xt[:1], 0.1, opacity=1.0)
    with pytest.raises(InputError, match="one poison each"):
        FeatureCollision(ident, 0, xt[:5], 3 / len(y), steps=1).poison(x, y)
    with pytest.raises(InputError, match="alike"):
        FeatureCollision(ident, 0, xt[:1].reshape(1, -1), 0.01, steps=1).poison(x, y)


def test_crafting_leaves_the_extractor_untouched(digits_arrays: Arrays) -> None:
    """The user's network is read, never trained: no .grad is left on it and its weights are unchanged."""
    x, y, xt, _ = digits_arrays
    torch.manual_seed(0)
    extractor = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU())
    before = [p.detach().clone() for p in extractor.parameters()]
    FeatureCollision(extractor, 0, xt[:1], 5 / len(y), steps=3).poison(x, y)
    assert all(p.grad is None for p in extractor.parameters())
    assert all(torch.equal(a, b) for a, b in zip(before, extractor.parameters(), strict=True))
