"""What a file is, read from its bytes — never from its name, and never by unpickling it.

Shared by model loading and the integrity scanner. Pickle-based files (raw pickle, joblib,
``torch.save`` checkpoints, object arrays) are recognised and refused here with a message that says
how to convert them. No torch import: the scanner must start fast.
"""

from __future__ import annotations

import bz2
import io
import json
import lzma
import mmap
import os
import pickletools
import struct
import tarfile
import zipfile
import zlib
from math import prod
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal

from modelshield.core.errors import DependencyError, FormatError, MissingFileError, UnsafeFormatError

if TYPE_CHECKING:
    import numpy as np

FileFormat = Literal["safetensors", "torchscript", "onnx", "skops", "npz", "npy", "parquet", "unknown"]
CONVERT_HINT = (
    "convert it in the trusted environment that made it: for PyTorch "
    "safetensors.torch.save_file(model.state_dict(), 'model.safetensors'), or export to ONNX or skops; "
    "for data, .npz, CSV or Parquet"
)
_HEAD = 1 << 20
MAX_SAFETENSORS_HEADER = 100_000_000
_SAFETENSORS_DTYPES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
    "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8, "F8_E4M3FNUZ": 1, "F8_E5M2FNUZ": 1, "F8_E8M0": 1,
    "C64": 8,
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


def npy_dtype(f: IO[bytes]) -> np.dtype:
    """The dtype in a .npy header (a Python literal: nothing is unpickled); ``f`` is left at the data.

    numpy is imported here, not at module level: scanning anything but a .npy/.npz never needs it."""
    from numpy.lib import format as npy_format

    version = npy_format.read_magic(f)
    read_header = npy_format.read_array_header_1_0 if version == (1, 0) else npy_format.read_array_header_2_0
    return read_header(f)[2]


def refuse_pickled_npy(f: IO[bytes], where: str | Path) -> None:
    """Refuse a .npy array of Python objects: its data is a pickle."""
    if npy_dtype(f).hasobject:
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
    if looks_like_safetensors(head):
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


def looks_like_safetensors(head: bytes) -> bool:
    """An 8-byte little-endian header length within reason, then a JSON object."""
    return len(head) > 8 and head[8:9] == b"{" and struct.unpack("<Q", head[:8])[0] <= MAX_SAFETENSORS_HEADER


def check_safetensors(path: Path) -> None:
    """Refuse a safetensors file whose header lies: bad JSON, unknown dtypes, offsets out of range or overlapping."""
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
        check_safetensors_data(data, path)


def check_safetensors_data(data: bytes | bytearray | memoryview | mmap.mmap, where: str | Path) -> None:
    """The same checks on a whole safetensors file already in memory (or mapped)."""
    size = len(data)
    n = struct.unpack("<Q", data[:8])[0]
    if n > size - 8:
        raise FormatError(f"{where}: safetensors header length {n} runs past the end of the file ({size} bytes)")
    check_safetensors_header(bytes(data[8 : 8 + n]), size - 8 - n, where)


def check_safetensors_header(raw: bytes, data_len: int, path: str | Path) -> None:
    """Refuse a safetensors header (``raw``, before ``data_len`` data bytes) that is not what the format's spec allows.

    Strict where the spec is: UTF-8 JSON (``json.loads`` on bytes would also take UTF-16/32, which a pickle
    can hide in), no duplicate keys or NaN, entries of exactly dtype/shape/data_offsets, a ``__metadata__`` of
    strings, and tensors that tile the data from its first byte to its last with no gap or overlap."""
    try:
        header = json.loads(raw.decode("utf-8"), object_pairs_hook=_unique_keys, parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError) as exc:
        raise FormatError(f"{path}: the safetensors header is not valid JSON in UTF-8 ({exc})") from None
    if not isinstance(header, dict):
        raise FormatError(f"{path}: the safetensors header is not a JSON object")
    metadata = header.pop("__metadata__", {})
    if not (isinstance(metadata, dict) and all(isinstance(v, str) for v in metadata.values())):
        raise FormatError(f"{path}: the safetensors __metadata__ is not a map of strings")
    spans = sorted(_tensor_span(name, info, data_len, path) for name, info in header.items())
    pos = 0
    for begin, end, name in spans:
        if begin != pos:
            what = "overlaps the tensor before it" if begin < pos else f"leaves bytes {pos}..{begin} unused"
            raise FormatError(f"{path}: tensor {name!r} {what}")
        pos = end
    if pos != data_len:
        raise FormatError(f"{path}: {data_len - pos} bytes after the last tensor belong to no tensor")


def _tensor_span(name: str, info: Any, data_len: int, path: str | Path) -> tuple[int, int, str]:
    if not (isinstance(info, dict) and set(info) == {"dtype", "shape", "data_offsets"}):
        raise FormatError(f"{path}: tensor {name!r} is not exactly dtype, shape and data_offsets")
    if info["dtype"] not in _SAFETENSORS_DTYPES:
        raise FormatError(f"{path}: tensor {name!r} has an unknown dtype {info['dtype']!r}")
    shape, offsets = info["shape"], info["data_offsets"]
    if not (isinstance(shape, list) and all(_natural(d) for d in shape)):
        raise FormatError(f"{path}: tensor {name!r} has an invalid shape {shape!r}")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(_natural(o) for o in offsets)):
        raise FormatError(f"{path}: tensor {name!r} has invalid data_offsets {offsets!r}")
    begin, end = offsets
    if not begin <= end <= data_len:
        raise FormatError(f"{path}: tensor {name!r} spans bytes {begin}..{end}, outside the {data_len} data bytes")
    if end - begin != prod(shape) * _SAFETENSORS_DTYPES[info["dtype"]]:
        raise FormatError(f"{path}: tensor {name!r} has {end - begin} bytes for shape {shape} {info['dtype']}")
    return begin, end, name


def _natural(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise ValueError("a key is repeated, and readers disagree on which one counts")
    return dict(pairs)


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")
