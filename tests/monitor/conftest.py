"""Fixtures of the training-monitor CLI tests."""

from __future__ import annotations

import numpy as np
import pytest
import torch


@pytest.fixture(scope="module")
def digits_files(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """--model and --data for harden: the digits CNN's initial weights and 600 digits as an .npz."""
    from modelshield.core.datasets import sklearn_dataset
    from modelshield.core.loading import save_torch_model
    from modelshield.demo import DigitsCNN

    folder = tmp_path_factory.mktemp("digits")
    ds = sklearn_dataset("digits", "all").subset(600)
    np.savez(folder / "data.npz", x=ds.x.numpy(), y=ds.y.numpy())
    torch.manual_seed(0)
    save_torch_model(DigitsCNN(), folder / "w.safetensors")
    return ["--model", str(folder / "w.safetensors"), "--data", str(folder / "data.npz")]
