"""Checks for safetensors, NumPy and SavedModel files (ONNX: ``onnx_check``; Keras and HDF5: ``keras_hdf5``)."""

from __future__ import annotations

import io
import tokenize
from typing import TYPE_CHECKING

from modelshield.core.errors import FormatError
from modelshield.core.file_formats import check_safetensors_data, npy_dtype
from modelshield.integrity.allowlist import Verdict
from modelshield.integrity.pickle_analysis import Data, analyse_pickle
from modelshield.integrity.results import issue

if TYPE_CHECKING:  # pydantic is imported only when a finding is made
    from modelshield.core.findings import Finding

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_TF_CODE_OPS = (b"PyFunc", b"PyFuncStateless", b"EagerPyFunc", b"ReadFile", b"WriteFile", b"MatchingFiles")


def check_safetensors(data: Data, where: str) -> list[Finding]:
    """Offsets, overlaps, sizes and dtypes, by the same rules ``load_model`` applies."""
    try:
        check_safetensors_data(data, where)
    except FormatError as exc:
        why = str(exc).removeprefix(f"{where}: ")
        return [issue(Verdict.unsafe, "MS-SCAN-ST-HEADER", "safetensors header breaks the format's rules", where, why)]
    return []


def check_npy(data: Data, where: str) -> tuple[list[Finding], int | None]:
    """Object arrays are stored as pickles after the header (``np.save``'s default): that pickle is judged.
    Also returns where a plain array's raw numbers start (None for an object array or a broken header)."""
    f = io.BytesIO(bytes(data[: 1 << 16]))
    try:
        dtype = npy_dtype(f)
    except ValueError as exc:
        return [issue(Verdict.unparsed, "MS-SCAN-NPY-HEADER", "NumPy header unreadable", where, str(exc))], None
    except (SyntaxError, tokenize.TokenError) as exc:  # numpy tokenizes the header's dict literal itself
        why = f"the header is not a Python literal ({exc.args[0] if exc.args else type(exc).__name__})"
        return [issue(Verdict.unparsed, "MS-SCAN-NPY-HEADER", "NumPy header unreadable", where, why)], None
    if not dtype.hasobject:
        return [], f.tell()
    found = analyse_pickle(bytes(data[f.tell() :]), f"{where}[object array]").findings
    if not found:  # np.load(allow_pickle=True) unpickles it, judged like any pickle: strings, numbers, tuples
        return [], None
    return [issue(Verdict.unknown, "MS-SCAN-NPY-OBJECT", "NumPy array of Python objects", where,
                  "the array is a pickle; loading it needs allow_pickle=True"), *found], None  # fmt: skip


def check_saved_model(data: Data, where: str) -> list[Finding]:
    """A SavedModel graph is protobuf; code and file-system ops show as their op-name strings."""
    found = [issue(Verdict.unsafe, "MS-SCAN-TF-OP", "TensorFlow op that runs code or touches files", where,
                   f"the graph uses {op.decode()}") for op in _TF_CODE_OPS if b"\x12" + bytes([len(op)]) + op in data]  # fmt: skip
    return found or [issue(Verdict.unknown, "MS-SCAN-TF", "SavedModel not fully parsed", where,
                           "no code ops were found, but the graph is not parsed without TensorFlow")]  # fmt: skip
