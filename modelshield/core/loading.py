"""Read a model file by what it contains — never by its name, and never by unpickling it.

Supported: safetensors weights plus an architecture, TorchScript, ONNX and skops. The format is
read from the bytes (``file_formats``); pickle-based files are refused there. This module only reads:
whether an untrusted file may be read at all (signature, provenance lock) is decided in one place above
core, ``modelshield.integrity.safe_load.load_model``, which library users and the CLI call.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from modelshield.core.adapters import OnnxModel, SklearnModel
from modelshield.core.errors import DependencyError, FormatError, InputError, UnsafeFormatError, error_cause
from modelshield.core.file_formats import check_safetensors, detect_format
from modelshield.core.files import atomic_path
from modelshield.core.model import Model, TorchModel

SUPPORTED_MODELS = "safetensors weights (with arch='package.module:Class'), TorchScript, ONNX, skops"


def build_arch(arch: str | None, arch_kwargs: dict[str, Any] | None) -> nn.Module:
    """Construct the network named 'package.module:ClassName' (code the user chose to trust)."""
    if not arch:
        raise InputError("a safetensors file holds weights only; pass arch='package.module:ClassName' for the network")
    module_name, _, attr = arch.partition(":")
    if not module_name or not attr:
        raise InputError(f"arch must look like 'package.module:ClassName', not {arch!r}")
    try:
        factory: Any = importlib.import_module(module_name)
    except ImportError as e:
        raise InputError(f"cannot import {module_name!r} for arch {arch!r}: {e}") from e
    for part in attr.split("."):
        if not hasattr(factory, part):
            raise InputError(f"{module_name!r} has no {attr!r}")
        factory = getattr(factory, part)
    try:
        net = factory(**(arch_kwargs or {}))
    except TypeError as e:
        raise InputError(f"cannot construct {arch} with {arch_kwargs or {}}: {e}") from e
    if not isinstance(net, nn.Module):
        raise InputError(f"{arch} built a {type(net).__name__}, not a torch.nn.Module")
    return net


def _load_weights(net: nn.Module, path: Path, arch: str) -> None:
    """Load a state dict strictly, naming every missing and unexpected key."""
    from safetensors.torch import load_model as load_safetensors

    try:
        missing, unexpected = load_safetensors(net, os.fspath(path), strict=False)
    except RuntimeError as e:  # shape mismatches
        raise InputError(f"{path} does not fit {arch}: {' '.join(str(e).split())}") from None
    if missing or unexpected:
        raise InputError(
            f"{path} does not fit {arch}: missing keys {sorted(missing)}, unexpected keys {sorted(unexpected)}",
            hint="check arch and arch_kwargs match the network that saved the weights",
        )


def _torch_model(
    net: nn.Module, input_shape: Sequence[int] | None, num_classes: int | None, **kwargs: Any
) -> TorchModel:
    """Wrap a network, reading num_classes off one forward pass on zeros (which also checks the shape)."""
    if input_shape is None:
        raise InputError("input_shape is required for a PyTorch model", hint="e.g. input_shape=(1, 8, 8)")
    net.eval()
    try:
        with torch.no_grad():
            out = net(torch.zeros(1, *input_shape))
    except Exception as e:  # whatever the network raises on a wrong shape
        shape = ", ".join(map(str, input_shape))
        hint = (
            "for flat data rows, pass the per-sample shape, e.g. input_shape=(1, 28, 28)"
            if len(input_shape) == 1
            else ""
        )
        raise InputError(f"the network fails on an input of shape (1, {shape}): {error_cause(e)}", hint=hint) from e
    if not isinstance(out, torch.Tensor) or out.ndim != 2:
        raise InputError("the network must return a (N, num_classes) tensor of scores")
    if num_classes is not None and num_classes != out.shape[1]:
        raise InputError(f"the network outputs {out.shape[1]} scores per sample, but num_classes={num_classes}")
    return TorchModel(net, input_shape=input_shape, num_classes=int(out.shape[1]), **kwargs)


def _load_skops(path: Path, trusted_types: Sequence[str] | None) -> Any:
    try:
        import skops.io as sio
    except ImportError as e:
        raise DependencyError(
            f"{path} is a skops file, which needs skops", hint="pip install 'modelshield[skops]'"
        ) from e
    untrusted = sio.get_untrusted_types(file=path)
    refused = sorted(set(untrusted) - set(trusted_types or ()))
    if refused:
        raise UnsafeFormatError(
            f"{path} needs types skops does not trust by default: {', '.join(refused)}",
            hint="review them and pass trusted_types=[...] to load it anyway",
        )
    return sio.load(path, trusted=untrusted)


def read_model(
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
) -> Model:
    """A ``Model`` from a file, its format read from its bytes; pickle-based files are refused.

    safetensors needs ``arch`` ('package.module:ClassName', built with ``arch_kwargs``) and, like
    TorchScript, ``input_shape``; ``num_classes`` is read off the network when not given. ``mean``
    and ``std`` apply to PyTorch models only. skops files load only when every type they need is
    trusted by skops or listed in ``trusted_types``. No signature is checked here: load through
    ``modelshield.integrity.safe_load.load_model``.
    """
    path = Path(path)
    fmt = detect_format(path)
    if fmt in ("safetensors", "torchscript"):
        torch_kwargs = dict(bounds=bounds, mean=mean, std=std, device=device)
        if fmt == "safetensors":
            check_safetensors(path)
            net = build_arch(arch, arch_kwargs)
            _load_weights(net, path, arch or "")
        else:
            net = torch.jit.load(os.fspath(path), map_location="cpu")
        return _torch_model(net, input_shape, num_classes, **torch_kwargs)
    if fmt not in ("onnx", "skops"):
        raise FormatError(f"{path} is not a model format modelshield reads; supported: {SUPPORTED_MODELS}")
    if mean is not None or std is not None:
        raise InputError("mean/std apply to PyTorch models; bake the normalisation into the ONNX or skops model")
    if fmt == "onnx":
        return OnnxModel(path, input_shape=input_shape, num_classes=num_classes, bounds=bounds)
    estimator = _load_skops(path, trusted_types)
    if input_shape is None:
        if not hasattr(estimator, "n_features_in_"):
            raise InputError(f"cannot tell the input shape of {type(estimator).__name__}; pass input_shape")
        input_shape = (int(estimator.n_features_in_),)
    return SklearnModel(estimator, input_shape=input_shape, num_classes=num_classes, bounds=bounds)


def save_torch_model(
    module: nn.Module | TorchModel, path: str | os.PathLike[str], metadata: dict[str, str] | None = None
) -> Path:
    """Write a network's weights as safetensors (the format ``read_model`` reads without running code), atomically:
    a failure never leaves a partial file at ``path``. ``metadata`` goes into the header (e.g. a DP budget)."""
    from safetensors.torch import save_model

    net = module.module if isinstance(module, TorchModel) else module
    with atomic_path(Path(path), mode=0o644) as tmp:
        save_model(net, os.fspath(tmp), metadata=metadata)
    return Path(path)
