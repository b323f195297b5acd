"""Load a model file by what it contains — never by its name, and never by unpickling it.

Pickle-based files (raw pickle, joblib, ``torch.save`` checkpoints, object arrays) run arbitrary
code when loaded, so they are refused with a message that says how to convert them. Supported:
safetensors weights plus an architecture, TorchScript, ONNX and skops.
"""

from __future__ import annotations

import bz2
import importlib
import io
import json
import lzma
import os
import pickletools
import struct
import tarfile
import zipfile
import zlib
from collections.abc import Sequence
from math import prod
from pathlib import Path
from typing import Any, BinaryIO, Literal

import numpy as np
import torch
from torch import nn

from modelshield.core.adapters import OnnxModel, SklearnModel
from modelshield.core.errors import (
    DependencyError,
    FormatError,
    InputError,
    MissingFileError,
    UnsafeFormatError,
)
from modelshield.core.model import Model, TorchModel

FileFormat = Literal["safetensors", "torchscript", "onnx", "skops", "npz", "npy", "parquet", "unknown"]
SUPPORTED_MODELS = "safetensors weights (with arch='package.module:Class'), TorchScript, ONNX, skops"
CONVERT_HINT = (
    "convert it in the trusted environment that made it: for PyTorch "
    "safetensors.torch.save_file(model.state_dict(), 'model.safetensors'), or export to ONNX or skops; "
    "for data, .npz, CSV or Parquet"
)
_HEAD = 1 << 20
_MAX_SAFETENSORS_HEADER = 100_000_000
_SAFETENSORS_DTYPES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
    "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8,
}  # fmt: skip


def _refuse(path: Path, what: str) -> UnsafeFormatError:
    return UnsafeFormatError(
        f"{path} is {what}: loading it would run arbitrary code, so modelshield refuses it", hint=CONVERT_HINT
    )


def _pickle_kind(head: bytes) -> str | None:
    """Describe a pickle stream, or None. Protocol 2+ opens with PROTO; 0 and 1 have no magic, so
    their opcodes are simulated (pickletools parses, it never builds objects) to a clean STOP."""
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return f"a pickle (protocol {head[1]})"
    try:
        pickletools.dis(head, out=io.StringIO())
    except Exception:  # pickletools raises ValueError and friends on anything that is not a pickle
        return None
    return "a pickle (protocol 0 or 1)"


def decompressor(head: bytes) -> Any | None:
    """A fresh decompressor for the gzip, zlib, bz2, xz or lzma stream (joblib's compressors) ``head`` opens."""
    if head.startswith(b"\x1f\x8b"):
        stream: Any = zlib.decompressobj(wbits=31)
    elif head[:1] == b"x" and int.from_bytes(head[:2], "big") % 31 == 0:
        stream = zlib.decompressobj()
    elif head.startswith(b"BZh"):
        stream = bz2.BZ2Decompressor()
    elif head.startswith(b"\xfd7zXZ\x00"):
        stream = lzma.LZMADecompressor()
    elif head.startswith(b"\x5d\x00\x00"):
        stream = lzma.LZMADecompressor(format=lzma.FORMAT_ALONE)
    else:
        return None
    return stream


def _decompressed_head(head: bytes) -> bytes | None:
    """The first bytes inside a compressed stream, else None."""
    stream = decompressor(head)
    if stream is None:
        return None
    try:
        return stream.decompress(head, _HEAD)
    except (OSError, EOFError, ValueError, zlib.error, lzma.LZMAError):
        return None


def _zip_format(path: Path) -> FileFormat:
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
    except zipfile.BadZipFile:
        return "unknown"
    inner = {n.split("/", 1)[1] for n in names if "/" in n}
    if "constants.pkl" in inner and any(n.startswith("code/") for n in inner):
        return "torchscript"
    if "data.pkl" in inner:
        raise _refuse(path, "a torch.save checkpoint (a zip holding data.pkl)")
    if "schema.json" in names:
        return "skops"
    if names and all(n.endswith(".npy") for n in names):
        return "npz"
    return "unknown"


def refuse_pickled_npy(f: BinaryIO, where: str | Path) -> None:
    """Read a .npy header (a Python literal: nothing is unpickled) and refuse arrays of objects."""
    version = np.lib.format.read_magic(f)
    read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    if read_header(f)[2].hasobject:
        raise _refuse(Path(where), "a NumPy array of Python objects (stored as pickles)")


def _is_onnx(path: Path) -> bool:
    try:
        import onnx
    except ImportError as e:
        raise DependencyError(
            f"{path} may be ONNX, which needs the onnx package", hint="pip install 'modelshield[onnx]'"
        ) from e
    try:
        proto = onnx.load(os.fspath(path), load_external_data=False)
    except Exception:  # protobuf's DecodeError and friends: not a ModelProto
        return False
    return proto.ir_version > 0 and proto.HasField("graph") and len(proto.graph.output) > 0


def detect_format(path: str | os.PathLike[str]) -> FileFormat:
    """Name a file's format from its bytes; raises ``UnsafeFormatError`` for anything pickle-based."""
    path = Path(path)
    if not path.exists():
        raise MissingFileError(f"no such file: {path}")
    if path.is_dir():
        raise FormatError(f"{path} is a directory, not a file")
    with open(path, "rb") as f:
        head = f.read(_HEAD)
    if len(head) > 8 and head[8:9] == b"{" and struct.unpack("<Q", head[:8])[0] <= _MAX_SAFETENSORS_HEADER:
        return "safetensors"
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return _zip_format(path)
    if head.startswith(b"\x93NUMPY"):
        with open(path, "rb") as f:
            refuse_pickled_npy(f, path)
        return "npy"
    if head.startswith(b"PAR1"):
        return "parquet"
    if head[257:262] == b"ustar":
        try:
            with tarfile.open(path) as tf:  # lists member headers; extracts nothing
                names = set(tf.getnames())
        except tarfile.TarError:
            return "unknown"
        if {"pickle", "storages", "sys_info"} & names:
            raise _refuse(path, "a legacy torch.save tar archive of pickles")
        return "unknown"
    inner = _decompressed_head(head)
    if inner is not None and _pickle_kind(inner):
        raise _refuse(path, "a compressed pickle (joblib or similar)")
    kind = _pickle_kind(head)
    if kind:
        raise _refuse(path, kind)
    if head[:1] == b"\x08" and _is_onnx(path):  # a ModelProto opens with field 1, ir_version
        return "onnx"
    return "unknown"


def check_safetensors(path: Path) -> None:
    """Refuse a safetensors file whose header lies: bad JSON, unknown dtypes, offsets out of range or overlapping."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        if n > size - 8:
            raise FormatError(f"{path}: safetensors header length {n} runs past the end of the file ({size} bytes)")
        check_safetensors_header(f.read(n), size - 8 - n, path)


def check_safetensors_header(raw: bytes, data_len: int, path: str | Path) -> None:
    """Refuse a safetensors header (``raw``, before ``data_len`` data bytes) that lies about its tensors."""
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise FormatError(f"{path}: the safetensors header is not valid JSON") from None
    if not isinstance(header, dict):
        raise FormatError(f"{path}: the safetensors header is not a JSON object")
    spans = []
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if not isinstance(info, dict) or info.get("dtype") not in _SAFETENSORS_DTYPES:
            raise FormatError(f"{path}: tensor {name!r} has an unknown dtype")
        shape, offsets = info.get("shape"), info.get("data_offsets")
        if not (isinstance(shape, list) and all(isinstance(d, int) and d >= 0 for d in shape)):
            raise FormatError(f"{path}: tensor {name!r} has an invalid shape {shape!r}")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(o, int) for o in offsets)):
            raise FormatError(f"{path}: tensor {name!r} has invalid data_offsets {offsets!r}")
        begin, end = offsets
        if not 0 <= begin <= end <= data_len:
            raise FormatError(f"{path}: tensor {name!r} spans bytes {begin}..{end}, outside the {data_len} data bytes")
        if end - begin != prod(shape) * _SAFETENSORS_DTYPES[info["dtype"]]:
            raise FormatError(f"{path}: tensor {name!r} has {end - begin} bytes for shape {shape} {info['dtype']}")
        spans.append((begin, end, name))
    spans.sort()
    for (_, prev_end, prev), (begin, _, name) in zip(spans, spans[1:], strict=False):
        if begin < prev_end:
            raise FormatError(f"{path}: tensors {prev!r} and {name!r} overlap")


def _build_arch(arch: str | None, arch_kwargs: dict[str, Any] | None) -> nn.Module:
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
        raise InputError(f"the network fails on an input of shape (1, {', '.join(map(str, input_shape))}): {e}") from e
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
) -> Model:
    """A ``Model`` from a file, its format read from its bytes; pickle-based files are refused.

    safetensors needs ``arch`` ('package.module:ClassName', built with ``arch_kwargs``) and, like
    TorchScript, ``input_shape``; ``num_classes`` is read off the network when not given. ``mean``
    and ``std`` apply to PyTorch models only. skops files load only when every type they need is
    trusted by skops or listed in ``trusted_types``.
    """
    path = Path(path)
    fmt = detect_format(path)
    if fmt in ("safetensors", "torchscript"):
        torch_kwargs = dict(bounds=bounds, mean=mean, std=std, device=device)
        if fmt == "safetensors":
            check_safetensors(path)
            net = _build_arch(arch, arch_kwargs)
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


def save_torch_model(module: nn.Module | TorchModel, path: str | os.PathLike[str]) -> Path:
    """Write a network's weights as safetensors, the format ``load_model`` reads without running code."""
    from safetensors.torch import save_model

    net = module.module if isinstance(module, TorchModel) else module
    save_model(net, os.fspath(path))
    return Path(path)
