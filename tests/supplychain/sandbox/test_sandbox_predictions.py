"""A sandboxed honest model predicts exactly what it predicts in-process, through the Model protocol."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch

from modelshield.attacks.evasion import Square
from modelshield.core.adapters.base import BlackBoxModel
from modelshield.core.errors import InputError, MissingFileError
from modelshield.core.loading import save_torch_model
from modelshield.demo import DigitsCNN
from modelshield.supplychain.sandbox import Sandbox, SandboxedModel


def test_numpy_vendor_model_matches_in_process(vendor: Path, vendor_module: ModuleType) -> None:
    x = np.random.default_rng(1).random((300, 8), dtype=np.float32)
    reference = vendor_module.linear(seed=2)
    with Sandbox(vendor=vendor, entry="acme.models:linear", factory_kwargs={"seed": 2}) as box:
        # This machine (root, Linux 6.x) supports every layer; a silent fallback would weaken every other test.
        assert [layer.name for layer in box.layers if not layer.active] == []
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


def test_model_file_is_loaded_inside_the_sandbox(tmp_path: Path) -> None:
    """A private safetensors file (0600) with an architecture by name: load_model runs in the sandbox, not here."""
    torch.set_num_threads(1)
    torch.manual_seed(0)
    net = DigitsCNN().eval()
    path = save_torch_model(net, tmp_path / "digits.safetensors")
    path.chmod(0o600)  # not readable by the sandbox's user: the sandbox must give it a read-only copy
    x = torch.rand(16, 1, 8, 8)
    with Sandbox(model=path, load_options={"arch": "modelshield.demo:DigitsCNN"}, input_shape=(1, 8, 8)) as box:
        assert box.info is not None and box.info.num_classes == 10
        got = box.model.logits(x)
    with torch.no_grad():
        torch.testing.assert_close(got, net(x))


def test_bad_arguments_are_refused_before_anything_starts(vendor: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="either a vendor folder"):
        Sandbox(vendor=vendor, model=tmp_path / "m.onnx", entry="a:b")
    with pytest.raises(InputError, match="package.module:factory"):
        Sandbox(vendor=vendor, entry="acme.models")
    with pytest.raises(MissingFileError):
        Sandbox(vendor=tmp_path / "missing", entry="a:b")
    with pytest.raises(InputError, match="unknown layers"):
        Sandbox(vendor=vendor, entry="acme.models:linear", disable=("selinux",)).start()


def test_a_black_box_attack_runs_against_the_sandboxed_model(vendor: Path, vendor_module: ModuleType) -> None:
    """Square attack through the pipe finds the same adversarial examples as against the model in-process."""
    torch.set_num_threads(1)
    x = torch.rand(8, 8)
    reference = SklearnLikeLinear(vendor_module.linear(seed=0))
    y = reference.predict(x)
    attack = Square(eps=0.3, n_queries=30, seed=0)
    expected = attack(reference, x, y)
    with Sandbox(vendor=vendor, entry="acme.models:linear") as box:
        adversarial = attack(box.model, x, y)
        assert box.model.queries >= 30
    torch.testing.assert_close(adversarial, expected)
    assert float((adversarial - x).abs().max()) <= 0.3 + 1e-6


class SklearnLikeLinear(BlackBoxModel):
    """The vendor's linear model in-process, as the same kind of black box (logits from numpy)."""

    num_classes = 3

    def __init__(self, linear: object) -> None:
        super().__init__(input_shape=(8,), bounds=(0.0, 1.0))
        self.linear = linear

    def _scores(self, x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(np.asarray(self.linear(x.numpy()), dtype=np.float32))
