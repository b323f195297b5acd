from __future__ import annotations

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
    [({"input_shape": (1, 8, 8), "num_classes": 3}, "knows 10 classes"), ({"input_shape": (10,)}, "takes 64 features")],
)
def test_mismatched_shape_or_classes_refused(logreg, kwargs, message):
    with pytest.raises(InputError, match=message):
        SklearnModel(logreg, **kwargs)


def test_adapters_package_exports_every_adapter():
    import modelshield.core.adapters as adapters
    from modelshield.core.model import Model

    assert sorted(adapters.__all__) == ["OnnxModel", "RemoteModel", "SklearnModel", "TorchModel"]
    assert all(issubclass(getattr(adapters, name), Model) for name in adapters.__all__)
