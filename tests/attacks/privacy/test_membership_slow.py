"""The docs' example at full size: LiRA and RMIA with 16 reference forests against a random forest (slow)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.ensemble import RandomForestClassifier

from modelshield.attacks.privacy import RMIA, LiRA, LossThreshold, ReferenceModels, ShadowModels, sklearn_train_fn
from modelshield.core.adapters import SklearnModel


@pytest.mark.slow
def test_reference_attacks_beat_the_threshold_on_a_forest() -> None:
    x, y = load_digits(return_X_y=True)
    order = np.random.default_rng(0).permutation(len(x))[:600]
    xs, ys = torch.from_numpy((x[order] / 16).astype(np.float32)), torch.from_numpy(y[order])
    is_member = np.arange(600) < 300
    forest = RandomForestClassifier(n_estimators=50, random_state=0)
    target = SklearnModel(forest.fit(xs[:300].numpy(), ys[:300].numpy()), input_shape=(64,))
    refs = ReferenceModels.train(sklearn_train_fn(forest, input_shape=(64,)), xs, ys, n_models=16, seed=1)
    loss = LossThreshold().evaluate(target, xs, ys, is_member)
    lira = LiRA(refs).evaluate(target, xs, ys, is_member)
    assert lira.tpr_at_fpr_0_01 >= 2 * loss.tpr_at_fpr_0_01 and lira.auc > loss.auc
    assert RMIA(refs).evaluate(target, xs, ys, is_member).auc > loss.auc
    assert ShadowModels(refs).evaluate(target, xs, ys, is_member).auc > 0.6
