"""A sandboxed honest model predicts exactly what it predicts in-process, through the Model protocol."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch

from modelshield.core.errors import InputError, MissingFileError
from modelshield.core.loading import load_model
from modelshield.supplychain.sandbox import Sandbox, SandboxedModel


def test_numpy_vendor_model_matches_in_process(vendor: Path, vendor_module: ModuleType) -> None:
    x = np.random.default_rng(1).random((300, 8), dtype=np.float32)
    reference = vendor_module.linear(seed=2)
    with Sandbox(vendor=vendor, entry="acme.models:linear", factory_kwargs={"seed": 2}) as box:
        model = box.model
        assert isinstance(model, SandboxedModel) and not model.white_box
        assert (model.input_shape, model.num_classes) == ((8,), 3)
        logits = model.logits(torch.from_numpy(x)).numpy()
        labels = model.predict(torch.from_numpy(x), batch_size=128)
        assert model.queries == 600  # every sample counted, for logits and for labels
    np.testing.assert_allclose(logits, reference(x), rtol=1e-6)
    assert torch.equal(labels, torch.from_numpy(reference(x).argmax(1)))


@pytest.mark.slow  # a second torch import inside a sandbox; the model-file test below covers torch by default
def test_torch_vendor_model_matches_in_process(vendor: Path, vendor_module: ModuleType) -> None:
    torch.set_num_threads(1)
    net = vendor_module.torch_mlp(seed=5).eval()
    x = torch.rand(64, 8)
    with Sandbox(vendor=vendor, entry="acme.models:torch_mlp", factory_kwargs={"seed": 5}, input_shape=(8,)) as box:
        got = box.model.logits(x)
    with torch.no_grad():
        torch.testing.assert_close(got, net(x), rtol=1e-5, atol=1e-6)


def test_model_file_is_loaded_inside_the_sandbox(tmp_path: Path, vendor_module: ModuleType) -> None:
    torch.set_num_threads(1)
    net = vendor_module.torch_mlp(seed=1).eval()
    path = tmp_path / "mlp.pt"
    torch.jit.save(torch.jit.script(net), str(path))
    x = torch.rand(16, 8)
    expected = load_model(path, input_shape=(8,)).logits(x)
    with Sandbox(model=path, input_shape=(8,)) as box:
        torch.testing.assert_close(box.model.logits(x), expected)


def test_bad_arguments_are_refused_before_anything_starts(vendor: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="either a vendor folder"):
        Sandbox(vendor=vendor, model=tmp_path / "m.onnx", entry="a:b")
    with pytest.raises(InputError, match="package.module:factory"):
        Sandbox(vendor=vendor, entry="acme.models")
    with pytest.raises(MissingFileError):
        Sandbox(vendor=tmp_path / "missing", entry="a:b")
    with pytest.raises(InputError, match="unknown layers"):
        Sandbox(vendor=vendor, entry="acme.models:linear", disable=("selinux",)).start()
