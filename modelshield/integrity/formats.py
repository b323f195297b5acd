"""Checks for the non-pickle formats: what in each can run code or reach outside the model."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from modelshield.core.errors import FormatError
from modelshield.core.file_formats import check_safetensors_data, npy_dtype
from modelshield.integrity.allowlist import Verdict
from modelshield.integrity.archives import escapes
from modelshield.integrity.pickle_analysis import Data, analyse_pickle
from modelshield.integrity.results import issue

if TYPE_CHECKING:  # pydantic is imported only when a finding is made
    from modelshield.core.findings import Finding

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_ONNX_DOMAINS = {"", "ai.onnx", "ai.onnx.ml", "ai.onnx.training", "ai.onnx.preview.training"}
_TF_CODE_OPS = (b"PyFunc", b"PyFuncStateless", b"EagerPyFunc", b"ReadFile", b"WriteFile", b"MatchingFiles")
def check_safetensors(data: Data, where: str) -> list[Finding]:
    """Offsets, overlaps, sizes and dtypes, by the same rules ``load_model`` applies."""
    try:
        check_safetensors_data(data, where)
    except FormatError as exc:
        return [issue(Verdict.unsafe, "MS-SCAN-ST-HEADER", "safetensors header lies about its data", where, str(exc))]
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


def check_onnx(model: Any, where: str) -> list[Finding]:
    """External-data paths must stay inside the model folder; ops outside the standard domains need native code."""
    from onnx import TensorProto

    found, local = [], {f.domain for f in model.functions}
    for graph in _graphs(model):
        tensors = [*graph.initializer, *(s.values for s in graph.sparse_initializer)]
        for tensor in tensors:
            if tensor.data_location != TensorProto.EXTERNAL:
                continue
            location = next((e.value for e in tensor.external_data if e.key == "location"), "")
            if escapes(location) or not location:
                found.append(issue(Verdict.unsafe, "MS-SCAN-ONNX-EXTERNAL", "ONNX external data escapes the model", where,
                                   f"tensor {tensor.name!r} reads {location!r}, outside the model's folder"))  # fmt: skip
    domains = {n.domain for g in _graphs(model) for n in g.node} | {o.domain for o in model.opset_import}
    for domain in sorted(domains - _ONNX_DOMAINS - local):
        found.append(issue(Verdict.unknown, "MS-SCAN-ONNX-DOMAIN", "ONNX custom operator domain", where,
                           f"ops in domain {domain!r} need a native library registered at load time"))  # fmt: skip
    return found


def _graphs(model: Any) -> Iterator[Any]:
    todo = [model.graph, *(_FunctionGraph(f) for f in model.functions)]
    while todo:
        graph = todo.pop()
        yield graph
        for node in graph.node:
            for attr in node.attribute:
                todo.extend([attr.g] if attr.HasField("g") else list(attr.graphs))


class _FunctionGraph:
    """A model-local function seen as a graph with nodes and no initializers."""

    def __init__(self, function: Any) -> None:
        self.node = function.node
        self.initializer: list[Any] = []
        self.sparse_initializer: list[Any] = []


def check_saved_model(data: Data, where: str) -> list[Finding]:
    """A SavedModel graph is protobuf; code and file-system ops show as their op-name strings."""
    found = [issue(Verdict.unsafe, "MS-SCAN-TF-OP", "TensorFlow op that runs code or touches files", where,
                   f"the graph uses {op.decode()}") for op in _TF_CODE_OPS if b"\x12" + bytes([len(op)]) + op in data]  # fmt: skip
    return found or [issue(Verdict.unknown, "MS-SCAN-TF", "SavedModel not fully parsed", where,
                           "no code ops were found, but the graph is not parsed without TensorFlow")]  # fmt: skip
