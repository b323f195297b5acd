"""Checks for the non-pickle formats: what in each can run code or reach outside the model (ONNX: ``onnx_check``)."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

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


def check_npy(data: Data, where: str) -> list[Finding]:
    """Object arrays are stored as pickles after the header: flag them and analyse that pickle too."""
    f = io.BytesIO(bytes(data[: 1 << 16]))
    try:
        dtype = npy_dtype(f)
    except ValueError as exc:
        return [issue(Verdict.unparsed, "MS-SCAN-NPY-HEADER", "NumPy header unreadable", where, str(exc))]
    if not dtype.hasobject:
        return []
    found = [issue(Verdict.unknown, "MS-SCAN-NPY-OBJECT", "NumPy array of Python objects", where,
                   "the array is a pickle; loading it needs allow_pickle=True")]  # fmt: skip
    return found + analyse_pickle(bytes(data[f.tell() :]), f"{where}[object array]").findings


def _layers(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        if "class_name" in node:
            yield node
        for value in node.values():
            yield from _layers(value)
    elif isinstance(node, list):
        for value in node:
            yield from _layers(value)


def check_keras_config(config: Any, where: str) -> list[Finding]:
    """Lambda layers carry marshalled bytecode; custom objects import code from outside Keras."""
    found = []
    for layer in _layers(config):
        name, module = layer.get("class_name"), layer.get("module")
        if name in ("Lambda", "TFOpLambda"):
            found.append(issue(Verdict.unsafe, "MS-SCAN-KERAS-LAMBDA", "Keras Lambda layer", where,
                               "a Lambda layer holds Python code that runs when the model loads or predicts"))  # fmt: skip
        elif isinstance(module, str) and module.split(".")[0] not in ("keras", "builtins"):
            found.append(issue(Verdict.unknown, "MS-SCAN-KERAS-CUSTOM", "Keras custom object", where,
                               f"{module}.{name} is imported from outside Keras when the model loads"))  # fmt: skip
    return found


def check_hdf5(data: Data, where: str) -> list[Finding]:
    """Without h5py, read the model_config JSON straight from the attribute bytes; anything else is unknown."""
    found = []
    for match in re.finditer(rb'\{"class_name": ?"[^"]+"', data):
        try:
            config, _ = json.JSONDecoder().raw_decode(
                bytes(data[match.start() : match.start() + (1 << 24)]).decode("utf-8", "replace")
            )
        except ValueError:
            continue
        found += check_keras_config(config, where)
    if not found:
        found.append(issue(Verdict.unknown, "MS-SCAN-HDF5", "HDF5 file not fully parsed", where,
                           "HDF5 is read for Keras configs only; install h5py-based checks to judge the rest"))  # fmt: skip
    return found


def check_saved_model(data: Data, where: str) -> list[Finding]:
    """A SavedModel graph is protobuf; code and file-system ops show as their op-name strings."""
    found = [issue(Verdict.unsafe, "MS-SCAN-TF-OP", "TensorFlow op that runs code or touches files", where,
                   f"the graph uses {op.decode()}") for op in _TF_CODE_OPS if b"\x12" + bytes([len(op)]) + op in data]  # fmt: skip
    return found or [issue(Verdict.unknown, "MS-SCAN-TF", "SavedModel not fully parsed", where,
                           "no code ops were found, but the graph is not parsed without TensorFlow")]  # fmt: skip
