from __future__ import annotations

import io
import warnings

import pytest
import torch
from torch import nn

from modelshield.core.adapters import OnnxModel
from modelshield.core.errors import InputError


def onnx_bytes(net: nn.Module, *, dynamic_batch: bool) -> bytes:
    """Export with the TorchScript-based exporter (the dynamo one needs onnxscript)."""
    buf = io.BytesIO()
    axes = {"x": {0: "n"}, "scores": {0: "n"}} if dynamic_batch else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            net,
            (torch.zeros(1, 1, 8, 8),),
            buf,
            input_names=["x"],
            output_names=["scores"],
            dynamic_axes=axes,
            dynamo=False,
        )
    return buf.getvalue()


def test_logits_graph_with_dynamic_batch(cnn, digits_small, tmp_path):
    path = tmp_path / "cnn.onnx"
    path.write_bytes(onnx_bytes(cnn, dynamic_batch=True))
    model = OnnxModel(path)
    assert model.input_shape == (1, 8, 8) and model.num_classes == 10 and not model.probabilities
    x = digits_small.x
    torch.testing.assert_close(model.logits(x), cnn(x), atol=1e-4, rtol=1e-4)
    assert model.predict(x, batch_size=16).tolist() == cnn(x).argmax(1).tolist()
    assert model.queries == 2 * len(x)


def test_softmax_graph_with_batch_fixed_to_one_is_looped_and_logged(cnn, digits_small):
    model = OnnxModel(onnx_bytes(nn.Sequential(cnn, nn.Softmax(dim=1)), dynamic_batch=False))
    assert model.probabilities
    x = digits_small.x[:7]
    torch.testing.assert_close(model.logits(x), torch.log_softmax(cnn(x), dim=1), atol=1e-4, rtol=1e-4)


def test_logits_declared_as_probabilities_refused_on_use(cnn, digits_small):
    model = OnnxModel(onnx_bytes(cnn, dynamic_batch=True), output="probabilities")
    with pytest.raises(InputError, match="negative probabilities"):
        model.logits(digits_small.x[:4])


def test_num_classes_or_input_shape_mismatch_refused(cnn):
    graph = onnx_bytes(cnn, dynamic_batch=True)
    with pytest.raises(InputError, match="outputs 10 scores"):
        OnnxModel(graph, num_classes=3)
    with pytest.raises(InputError, match="does not match"):
        OnnxModel(graph, input_shape=(1, 4, 16))


@pytest.fixture(scope="module")
def svc_onnx():
    """SVC(probability=True) on digits exported by skl2onnx, with and without its default ZipMap output."""
    skl2onnx = pytest.importorskip("skl2onnx")
    from sklearn.svm import SVC
    from threadpoolctl import threadpool_limits

    from modelshield.core.datasets import sklearn_dataset

    train, test = sklearn_dataset("digits", "train"), sklearn_dataset("digits", "test")
    x_train = train.x.flatten(1).numpy()
    with threadpool_limits(1), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # probability=True is deprecated in sklearn 1.9; users still write it
        svc = SVC(probability=True, random_state=0).fit(x_train, train.y.numpy())
        plain = skl2onnx.to_onnx(svc, x_train[:1], options={"zipmap": False}).SerializeToString()
        zipmap = skl2onnx.to_onnx(svc, x_train[:1]).SerializeToString()
    return svc, plain, zipmap, test


def test_sklearn_export_decides_with_its_label_output(svc_onnx):
    svc, plain, _, test = svc_onnx
    model = OnnxModel(plain, input_shape=(64,))
    assert model.has_scores and model.probabilities and not model.labels_from_scores
    x = test.x.flatten(1)
    own = svc.predict(x.numpy())
    by_proba = model.logits(x).argmax(dim=1).numpy()
    assert (own != by_proba).sum() >= 1  # the case this test is about exists
    assert model.predict(x).tolist() == own.tolist()


def test_sklearn_export_with_zipmap_is_a_label_only_model(svc_onnx):
    from modelshield.attacks.evasion import HopSkipJump
    from modelshield.core.errors import CapabilityError

    svc, _, zipmap, test = svc_onnx
    with pytest.raises(InputError, match="labels only; pass num_classes"):
        OnnxModel(zipmap, input_shape=(64,))
    model = OnnxModel(zipmap, input_shape=(64,), num_classes=10)
    assert not model.has_scores
    with pytest.raises(CapabilityError):
        model.logits(test.x[:2].flatten(1))
    x, y = test.x[:6].flatten(1), test.y[:6]
    assert model.predict(x).tolist() == svc.predict(x.numpy()).tolist()
    result = HopSkipJump(max_queries=60, init_evals=10, seed=0).run(model, x, y)
    assert result.n_verified == result.n_claimed > 0
