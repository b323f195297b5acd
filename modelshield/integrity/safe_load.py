"""``safe_load``: the one place modelshield unpickles — only after the scan passes, only when asked,
and only through an unpickler whose ``find_class`` returns allow-listed globals and nothing else."""

from __future__ import annotations

import os
import pickle
import types
from pathlib import Path
from typing import Any

from modelshield.core.errors import FormatError, UnsafeFormatError
from modelshield.integrity.allowlist import Verdict, canonical, classify
from modelshield.integrity.scanner import scan_file

_PICKLED = {"pickle", "pytorch"}


class RestrictedUnpickler(pickle.Unpickler):
    """A second wall behind the scan: imports only what the allow-list names, exactly."""

    def find_class(self, module: str, name: str) -> Any:
        dotted = canonical(module, name)
        if classify(dotted) is not Verdict.safe:
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
