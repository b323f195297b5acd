"""How an untrusted model file is loaded, decided here and nowhere else.

- ``load_model``: a model to run (safetensors + architecture, TorchScript, ONNX, skops). Its signature and
  provenance lock entry are verified first (``integrity.signing.onload``), then ``core.loading`` reads it by
  its bytes; pickle-based formats are refused.
- ``safe_load``: the one place modelshield unpickles — only after the scan passes, only when asked, and only
  through an unpickler whose ``find_class`` returns allow-listed globals and nothing else.
- Code that must run to build the model (a vendor's factory) runs in ``modelshield.supplychain.sandbox``,
  whose worker loads files through ``load_model`` too.
"""

from __future__ import annotations

import os
import pickle
import types
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelshield.core.errors import FormatError, UnsafeFormatError
from modelshield.integrity.allowlist import Verdict, classify_import
from modelshield.integrity.scanner import scan_file

if TYPE_CHECKING:
    import torch

    from modelshield.core.model import Model

_PICKLED = {"pickle", "pytorch"}


class RestrictedUnpickler(pickle.Unpickler):
    """A second wall behind the scan: imports only what the allow-list names, exactly."""

    def find_class(self, module: str, name: str) -> Any:
        dotted, verdict = classify_import(module, name)
        if verdict is not Verdict.safe:
            raise UnsafeFormatError(f"refused to import {dotted} while unpickling: it is not on the allow-list")
        return super().find_class(module, name)


# torch.load subclasses ``pickle_module.Unpickler`` and keeps our find_class.
_RESTRICTED_PICKLE = types.ModuleType("modelshield_restricted_pickle")
_RESTRICTED_PICKLE.__dict__.update(
    Unpickler=RestrictedUnpickler, load=lambda f, **kw: RestrictedUnpickler(f, **kw).load()
)


def safe_load(path: str | os.PathLike[str], *, allow_pickle: bool = False) -> Any:
    """Load a model or array file only when its scan is clean; pickle formats also need ``allow_pickle=True``."""
    path = Path(path)
    report = scan_file(path)
    if report.verdict is not Verdict.safe:
        reasons = "; ".join(f.description for f in report.findings[:3])
        raise UnsafeFormatError(f"{path} did not pass the scan ({report.verdict.value}): {reasons}",
                                hint="run 'modelshield scan' for every finding")  # fmt: skip
    if report.format in _PICKLED and not allow_pickle:
        raise UnsafeFormatError(
            f"{path} is pickle-based ({report.format}); it passed the scan, so pass allow_pickle=True to load it"
        )
    if report.format == "pytorch":
        import torch

        return torch.load(path, map_location="cpu", pickle_module=_RESTRICTED_PICKLE, weights_only=False)
    if report.format == "pickle":
        with open(path, "rb") as f:
            return RestrictedUnpickler(f).load()
    if report.format == "safetensors":
        from safetensors.torch import load_file

        return load_file(path)
    if report.format in ("npy", "npz"):
        import numpy as np

        loaded = np.load(path, allow_pickle=False)
        return dict(loaded) if report.format == "npz" else loaded
    if report.format == "onnx":
        import onnx

        return onnx.load(os.fspath(path))
    raise FormatError(f"{path} is {report.format}, which safe_load does not read")


def load_model(
    path: str | os.PathLike[str],
    *,
    arch: str | None = None,
    arch_kwargs: dict[str, Any] | None = None,
    input_shape: Sequence[int] | None = None,
    num_classes: int | None = None,
    bounds: tuple[float, float] = (0.0, 1.0),
    mean: Sequence[float] | float | None = None,
    std: Sequence[float] | float | None = None,
    device: str | torch.device | None = None,
    trusted_types: Sequence[str] | None = None,
    verify_key: str | os.PathLike[str] | None = None,
    signature: str | os.PathLike[str] | None = None,
    allow_unverified: bool | None = None,
) -> Model:
    """A ``Model`` from a file, verified before a byte of it is parsed; pickle-based files are refused.

    A signature beside the model (``<file>.sig``, ``model.sig`` in its folder, or ``signature``) is verified
    with ``verify_key`` (default: ``[verify] public_key`` / ``MODELSHIELD_VERIFY_KEY``), and a provenance lock
    entry for it is re-hashed; a signed model with no key is refused unless ``allow_unverified``. Any mismatch
    raises ``IntegrityError``. The other arguments are ``modelshield.core.loading.read_model``'s.
    """
    from modelshield.core.loading import read_model
    from modelshield.core.settings import load_settings
    from modelshield.integrity.signing.onload import check_before_load

    check_before_load(path, load_settings().verify, verify_key, signature, allow_unverified)
    return read_model(
        path,
        arch=arch,
        arch_kwargs=arch_kwargs,
        input_shape=input_shape,
        num_classes=num_classes,
        bounds=bounds,
        mean=mean,
        std=std,
        device=device,
        trusted_types=trusted_types,
    )
