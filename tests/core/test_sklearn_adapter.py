from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from sklearn.svm import LinearSVC

from modelshield.core.adapters import SklearnModel
from modelshield.core.errors import CapabilityError, InputError


def test_scores_are_log_probabilities_and_queries_are_counted(logreg, digits_small):
    model = SklearnModel(logreg, input_shape=(1, 8, 8))
    x = digits_small.x
    scores = model.logits(x[:10])
    assert not model.white_box and model.num_classes == 10
    assert scores.dtype == torch.float32 and scores.shape == (10, 10)
    np.testing.assert_allclose(
        scores.exp().numpy(), logreg.predict_proba(x[:10].flatten(1).numpy()), rtol=1e-5, atol=1e-6
    )
    assert model.predict(x).tolist() == logreg.predict(x.flatten(1).numpy()).tolist()
    assert model.queries == 10 + len(x)
    model.reset_queries()
    assert model.queries == 0


def test_label_only_estimator_maps_its_classes_to_indices(digits_small):
    names = np.array([f"digit-{i}" for i in range(10)])
    svc = LinearSVC().fit(digits_small.x.flatten(1).numpy(), names[digits_small.y.numpy()])
    model = SklearnModel(svc, input_shape=(1, 8, 8))
    assert not model.has_scores
    with pytest.raises(CapabilityError):
        model.logits(digits_small.x[:2])
    labels = model.predict(digits_small.x)
    assert (svc.classes_[labels.numpy()] == svc.predict(digits_small.x.flatten(1).numpy())).all()
    assert model.queries == len(digits_small)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"input_shape": (1, 8, 8), "num_classes": 3}, "knows 10 classes"),
        ({"input_shape": (10,)}, "takes 64 features, but the samples have 10"),
    ],
)
def test_mismatched_shape_or_classes_refused(logreg, kwargs, message):
    with pytest.raises(InputError, match=message):
        SklearnModel(logreg, **kwargs)


def test_adapters_package_exports_every_adapter():
    import modelshield.core.adapters as adapters
    from modelshield.core.model import Model

    assert sorted(adapters.__all__) == ["OnnxModel", "RemoteModel", "SklearnModel", "TorchModel"]
    assert all(issubclass(getattr(adapters, name), Model) for name in adapters.__all__)


@pytest.fixture(scope="module")
def svc_digits():
    """SVC(probability=True) on digits: its Platt-scaled probabilities disagree with its predict near the boundary."""
    from sklearn.svm import SVC
    from threadpoolctl import threadpool_limits

    from modelshield.core.datasets import sklearn_dataset

    train, test = sklearn_dataset("digits", "train"), sklearn_dataset("digits", "test")
    with threadpool_limits(1), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # sklearn 1.9 deprecates probability=True; users still write it
        svc = SVC(probability=True, random_state=0).fit(train.x.flatten(1).numpy(), train.y.numpy())
    return svc, test


def test_labels_are_the_estimators_own_predict_not_argmax_of_probabilities(svc_digits):
    from modelshield.attacks.evasion import Square

    svc, test = svc_digits
    model = SklearnModel(svc, input_shape=(1, 8, 8))
    assert model.has_scores and not model.labels_from_scores
    x, y = test.x[:120], test.y[:120]
    result = Square(0.1, n_queries=150, seed=0).run(model, x, y, batch_size=50)
    # Points near the boundary, where the two rules part: every label must be the estimator's predict.
    points = torch.cat([test.x, result.x_adv])
    flat = points.flatten(1).numpy()
    own = svc.predict(flat)
    by_proba = svc.classes_[svc.predict_proba(flat).argmax(axis=1)]
    assert (own != by_proba).sum() >= 3  # the case this test is about exists
    assert model.predict(points).tolist() == own.tolist()
    # Square searches with the probabilities but counts only what predict confirms.
    fooled = svc.predict(result.x_adv.flatten(1).numpy()) != y.numpy()
    assert result.success.tolist() == fooled.tolist()
    assert result.n_verified == result.n_claimed > 0  # every claim was confirmed before the sample stopped


def test_a_regressor_is_refused_as_one(digits_small):
    """A regressor has no classes_; the refusal says what it is, not that --num-classes is missing."""
    from sklearn.linear_model import LinearRegression

    reg = LinearRegression().fit(digits_small.x.flatten(1).numpy(), digits_small.y.numpy())
    with pytest.raises(InputError, match="LinearRegression is a regressor"):
        SklearnModel(reg, input_shape=(1, 8, 8))
