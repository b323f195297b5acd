from __future__ import annotations

import io
import json
import pickle
import struct
import tarfile
import warnings

import joblib
import numpy as np
import pytest
import skops.io as sio
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from modelshield.core.adapters import OnnxModel, SklearnModel, TorchModel
from modelshield.core.errors import FormatError, InputError, MissingFileError, UnsafeFormatError
from modelshield.core.loading import save_torch_model
from modelshield.integrity.safe_load import load_model

CNN = "modelshield.demo:DigitsCNN"
HARMLESS = {"weights": [0.5, -1.0], "name": "harmless"}


def scale(x: np.ndarray) -> np.ndarray:
    """A module-level function skops cannot know: its type must be trusted explicitly."""
    return x


def test_safetensors_round_trip_gives_identical_scores(cnn, digits_small, tmp_path):
    path = save_torch_model(cnn, tmp_path / "cnn.bin")
    model = load_model(path, arch=CNN, input_shape=(1, 8, 8))
    assert isinstance(model, TorchModel) and model.white_box and model.num_classes == 10
    assert torch.equal(model.logits(digits_small.x), cnn(digits_small.x))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"arch": None}, "pass arch="),
        ({"arch": "modelshield.demo.DigitsCNN"}, "must look like"),
        ({"arch": "modelshield.demo:NoSuchNet"}, "has no"),
        ({"arch": CNN, "arch_kwargs": {"num_classes": 5}}, "does not fit"),
        ({"arch": "torch.nn:Linear", "arch_kwargs": {"in_features": 64, "out_features": 10}}, "missing keys"),
        ({"arch": CNN, "num_classes": 5}, "outputs 10 scores"),
        ({"arch": CNN, "input_shape": None}, "input_shape is required"),
        ({"arch": CNN, "input_shape": (3, 32, 32)}, "fails on an input"),
    ],
)
def test_safetensors_that_do_not_fit_the_arch_are_refused(cnn, tmp_path, kwargs, message):
    path = save_torch_model(cnn, tmp_path / "cnn.safetensors")
    with pytest.raises(InputError, match=message):
        load_model(path, **{"input_shape": (1, 8, 8), **kwargs})


def test_torchscript_and_onnx_exports_agree(cnn, digits_small, tmp_path):
    torch.jit.save(torch.jit.trace(cnn, torch.zeros(1, 1, 8, 8)), tmp_path / "cnn.pt")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(cnn, (torch.zeros(1, 1, 8, 8),), tmp_path / "cnn.onnx", dynamic_axes={"x": {0: "n"}},
                          input_names=["x"], dynamo=False)  # fmt: skip
    scripted = load_model(tmp_path / "cnn.pt", input_shape=(1, 8, 8))
    onnx = load_model(tmp_path / "cnn.onnx")
    assert isinstance(scripted, TorchModel) and isinstance(onnx, OnnxModel)
    expected = cnn(digits_small.x).argmax(1).tolist()
    assert scripted.predict(digits_small.x).tolist() == onnx.predict(digits_small.x).tolist() == expected
    with pytest.raises(InputError, match="mean/std"):
        load_model(tmp_path / "cnn.onnx", mean=0.5)


def test_a_scripted_cnn_given_flat_rows_says_why_in_one_line(cnn, tmp_path):
    """TorchScript wraps the cause in a multi-line trace; the user needs the cause and --input-shape."""
    torch.jit.save(torch.jit.script(cnn), tmp_path / "cnn.pt")
    with pytest.raises(InputError) as caught:
        load_model(tmp_path / "cnn.pt", input_shape=(64,))
    message = str(caught.value)
    assert "\n" not in message and "Traceback" not in message
    assert "conv2d" in message and "input_shape=(1, 28, 28)" in caught.value.hint


def test_skops_round_trip(logreg, digits_small, tmp_path):
    sio.dump(logreg, tmp_path / "lr.skops")
    model = load_model(tmp_path / "lr.skops")
    assert isinstance(model, SklearnModel) and model.input_shape == (64,)
    flat = digits_small.x.flatten(1)
    assert model.predict(flat).tolist() == logreg.predict(flat.numpy()).tolist()


def test_skops_untrusted_types_need_an_explicit_allow_list(tmp_path):
    x, y = np.random.default_rng(0).random((20, 4)), np.arange(20) % 2
    sio.dump(make_pipeline(FunctionTransformer(scale), LogisticRegression()).fit(x, y), tmp_path / "pipe.skops")
    name = f"{scale.__module__}.scale"
    with pytest.raises(UnsafeFormatError, match=name):
        load_model(tmp_path / "pipe.skops")
    assert load_model(tmp_path / "pipe.skops", trusted_types=[name]).num_classes == 2


def legacy_torch_tar() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for member in ("sys_info", "pickle", "storages", "tensors"):
            data = pickle.dumps(HARMLESS)
            info = tarfile.TarInfo(member)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def pickle_variants(tmp_path) -> dict[str, bytes]:
    """Every pickle-based format, made by dumping harmless objects (dumping is safe; loading is not)."""
    files = {f"pickle protocol {p}": pickle.dumps(HARMLESS, protocol=p) for p in range(pickle.HIGHEST_PROTOCOL + 1)}
    for compress in (None, "zlib", "gzip", "bz2", "xz", "lzma"):
        joblib.dump(HARMLESS, tmp_path / "j", compress=(compress, 3) if compress else 0)
        files[f"joblib {compress}"] = (tmp_path / "j").read_bytes()
    for zipped in (True, False):
        buf = io.BytesIO()
        torch.save({"w": torch.ones(3)}, buf, _use_new_zipfile_serialization=zipped)
        files[f"torch.save zip={zipped}"] = buf.getvalue()
    files["torch legacy tar"] = legacy_torch_tar()
    buf = io.BytesIO()
    np.save(buf, np.array([HARMLESS], dtype=object), allow_pickle=True)
    files["npy of objects"] = buf.getvalue()
    return files


def test_every_pickle_variant_is_refused_without_unpickling(tmp_path, monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("something tried to unpickle")

    for name, target in [("load", pickle), ("loads", pickle), ("Unpickler", pickle), ("load", torch), ("load", joblib)]:
        monkeypatch.setattr(target, name, forbidden)
    for name, data in pickle_variants(tmp_path).items():
        path = tmp_path / "model.safetensors"  # a name that lies: the content decides
        path.write_bytes(data)
        with pytest.raises(UnsafeFormatError, match="arbitrary code") as info:
            load_model(path, arch=CNN, input_shape=(1, 8, 8))
        assert "safetensors.torch.save_file" in info.value.diagnostics(), name


def safetensors_with(header: dict, data: bytes = bytes(16), length: int | None = None) -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw) if length is None else length) + raw + data


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            safetensors_with(
                {
                    "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                    "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]},
                }
            ),
            "overlap",
        ),  # fmt: skip
        (safetensors_with({"a": {"dtype": "F32", "shape": [8], "data_offsets": [0, 32]}}), "outside"),
        (safetensors_with({"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}), "bytes for shape"),
        (safetensors_with({"a": {"dtype": "PY_OBJECT", "shape": [2], "data_offsets": [0, 8]}}), "unknown dtype"),
        (safetensors_with({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, length=10_000), "runs past"),
        (struct.pack("<Q", 12) + b'{"a": {"dtyp' + bytes(8), "not valid JSON"),
    ],
)
def test_corrupted_safetensors_header_refused(tmp_path, content, message):
    (tmp_path / "bad").write_bytes(content)
    with pytest.raises(FormatError, match=message):
        load_model(tmp_path / "bad", arch=CNN, input_shape=(1, 8, 8))


def test_missing_and_unknown_files(tmp_path):
    with pytest.raises(MissingFileError):
        load_model(tmp_path / "nope.onnx")
    (tmp_path / "notes.onnx").write_text("x,y,label\n1,2,0\n")
    with pytest.raises(FormatError, match="supported: safetensors"):
        load_model(tmp_path / "notes.onnx")


def test_save_torch_model_takes_a_torch_model(cnn, digits_small, tmp_path):
    path = save_torch_model(TorchModel(cnn, input_shape=(1, 8, 8), num_classes=10), tmp_path / "w.safetensors")
    assert torch.equal(load_model(path, arch=CNN, input_shape=(1, 8, 8)).logits(digits_small.x), cnn(digits_small.x))
