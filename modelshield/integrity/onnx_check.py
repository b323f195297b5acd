"""ONNX models walked in full: every tensor wherever it sits, every graph however deep, every operator's domain.

``onnx.load`` fetches external data for every TensorProto it finds: initializers, sparse initializers,
and tensors inside node attributes (``Constant``'s value, ``ConstantOfShape``, sparse values, tensor
lists), in the main graph, in If/Loop/Scan bodies at any depth, in local functions and training graphs.
An external-data entry is a list of key/value pairs that onnx applies in order (the last ``location``
wins) and onnxruntime reads by key, so every key of every entry is judged — a ``location`` that leaves
the model's folder reads any file the loader can (CVE-2022-25882, and its bypass CVE-2024-27318).
Operators outside the standard domains run native code registered at load time.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelshield.integrity.allowlist import Verdict
from modelshield.integrity.results import issue

if TYPE_CHECKING:  # pydantic is imported only when a finding is made
    from modelshield.core.findings import Finding

# The ONNX standard domains, and onnxruntime's built-in contrib operators (native, but shipped with the runtime).
KNOWN_DOMAINS = frozenset(
    {"", "ai.onnx", "ai.onnx.ml", "ai.onnx.training", "ai.onnx.preview.training", "com.microsoft"}
)
_KEYS = frozenset({"location", "offset", "length", "checksum"})
_ORT_MEMORY = "*/_ORT_MEM_ADDR_/*"  # onnxruntime reads "offset" as a raw address in its own memory


def looks_like_onnx(data: Any, max_fields: int = 1 << 16) -> bool:
    """True when the whole file is a well-formed protobuf stream, which is all ``onnx.load`` asks before parsing.

    Only top-level fields are walked, each skipped by its length, so a multi-GB file of another format is
    turned down after a few bytes without being copied. As permissive as protobuf (unknown fields, groups,
    any wire type): a stricter gate would let a polyglot's ONNX reading go unjudged. Past ``max_fields``
    the real parser decides."""
    pos, size = 0, len(data)
    try:
        for _ in range(max_fields):
            if pos == size:
                return pos > 0
            pos = _skip_field(data, pos, depth=0)
    except RecursionError:  # groups nested deeper than the walk goes: the parser decides
        return True
    except ValueError:
        return False
    return pos <= size


def _skip_field(data: Any, pos: int, depth: int) -> int:
    tag, pos = _varint(data, pos)
    field, wire = tag >> 3, tag & 7
    if field == 0 or wire in (4, 6, 7):
        raise ValueError("not a protobuf field")
    if depth > 64:
        raise RecursionError("groups nested deeper than 64")
    if wire == 0:
        return _varint(data, pos)[1]
    if wire in (1, 5):
        pos += 8 if wire == 1 else 4
    elif wire == 2:
        length, pos = _varint(data, pos)
        pos += length
    else:  # a group runs to its matching end tag
        while True:
            end_tag, after = _varint(data, pos)
            if end_tag == (field << 3 | 4):
                return after
            pos = _skip_field(data, pos, depth + 1)
    if pos > len(data):
        raise ValueError("field runs past the end")
    return pos


def _varint(data: Any, pos: int) -> tuple[int, int]:
    value = 0
    for shift in range(0, 70, 7):
        if pos >= len(data):
            raise ValueError("varint runs past the end")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
    raise ValueError("varint longer than 10 bytes")


def check_onnx(model: Any, where: str, folder: Path | None = None) -> list[Finding]:
    """Judge every external-data reference and every operator domain; ``folder`` is where the model lies,
    when it lies in a folder (then external files that are links out of it are caught too)."""
    found: list[Finding] = []
    functions = {(f.domain, f.name) for f in model.functions}
    for path, graph in _graphs(model):
        for name, tensor in _tensors(graph):
            found += _check_external(tensor, f"{where}:{path}:{name}", folder)
        for node in graph.node:
            if node.domain not in KNOWN_DOMAINS and (node.domain, node.op_type) not in functions:
                found.append(issue(Verdict.unknown, "MS-SCAN-ONNX-DOMAIN", "ONNX custom operator", where,
                                   f"{path}: operator {node.domain}::{node.op_type} needs a native library "
                                   "registered at load time; review where it comes from"))  # fmt: skip
    return _unique(found)


def external_files(model: Any) -> set[str]:
    """Every location the model's tensors read from: raw bytes that only the ONNX loader reads, as tensors."""
    return {
        value
        for _, graph in _graphs(model)
        for _, t in _tensors(graph)
        for key, value in _entries(t)
        if key == "location"
    }


def _unique(found: list[Finding]) -> list[Finding]:
    unique: dict[str, Finding] = {}
    for finding in found:
        unique.setdefault(finding.description, finding)
    return list(unique.values())


def _graphs(model: Any) -> Iterator[tuple[str, Any]]:
    """(where, graph) for the main graph, training graphs, local functions and every subgraph inside them."""
    todo: list[tuple[str, Any]] = [("graph", model.graph)]
    for i, info in enumerate(model.training_info):
        todo += [(f"training_info[{i}].initialization", info.initialization),
                 (f"training_info[{i}].algorithm", info.algorithm)]  # fmt: skip
    todo += [(f"function {f.domain}::{f.name}", f) for f in model.functions]
    while todo:
        path, graph = todo.pop()
        yield path, graph
        for node in graph.node:
            for attr in node.attribute:
                label = f"{path}/{node.op_type}:{node.name or '?'}.{attr.name}"
                if attr.HasField("g"):
                    todo.append((label, attr.g))
                todo += [(f"{label}[{i}]", g) for i, g in enumerate(attr.graphs)]


def _tensors(graph: Any) -> Iterator[tuple[str, Any]]:
    """Every TensorProto a graph (or a function, which has no initializers) holds, named for the finding."""
    for tensor in getattr(graph, "initializer", ()):
        yield f"initializer {tensor.name!r}", tensor
    for sparse in getattr(graph, "sparse_initializer", ()):
        yield from _sparse(f"sparse initializer {sparse.values.name!r}", sparse)
    attributes = [(f"{n.op_type} {n.name!r}.{a.name}", a) for n in graph.node for a in n.attribute]
    attributes += [(f"default of {a.name}", a) for a in getattr(graph, "attribute_proto", ())]
    for label, attr in attributes:
        if attr.HasField("t"):
            yield label, attr.t
        yield from ((f"{label}[{i}]", t) for i, t in enumerate(attr.tensors))
        if attr.HasField("sparse_tensor"):
            yield from _sparse(label, attr.sparse_tensor)
        for i, sparse in enumerate(attr.sparse_tensors):
            yield from _sparse(f"{label}[{i}]", sparse)


def _sparse(label: str, sparse: Any) -> Iterator[tuple[str, Any]]:
    yield f"{label} values", sparse.values
    yield f"{label} indices", sparse.indices


def _check_external(tensor: Any, where: str, folder: Path | None) -> list[Finding]:
    """Judge each key of the tensor's external-data entry, whether or not its data_location says EXTERNAL."""
    entries = _entries(tensor)
    found, keys = [], [key for key, _ in entries]
    for key in sorted({k for k in keys if keys.count(k) > 1}):
        found.append(_external(Verdict.unsafe, where, f"the key {key!r} appears {keys.count(key)} times; "
                               "onnx takes the last, other readers the first"))  # fmt: skip
    for key, value in entries:
        if key == "location":
            problem = location_problem(value, folder)
            if problem:
                found.append(_external(Verdict.unsafe, where, f"location {value!r} {problem}"))
        elif key in ("offset", "length"):
            if not re.fullmatch(r"[0-9]+", value):
                found.append(_external(Verdict.unparsed, where, f"{key} {value!r} is not a byte count"))
        elif key not in _KEYS:
            found.append(_external(Verdict.unparsed, where, f"unknown key {key!r}, which onnx sets as an "
                                   "attribute of its loader"))  # fmt: skip
    if tensor.data_location == 1 and "location" not in keys:
        found.append(_external(Verdict.unparsed, where, "external data without a location"))
    return found


def _entries(tensor: Any) -> list[tuple[str, str]]:
    """The external-data pairs as text: protobuf hands back bytes for a string field that is not UTF-8."""
    return [(_text(entry.key), _text(entry.value)) for entry in tensor.external_data]


def _text(value: str | bytes) -> str:
    return value.decode("utf-8", "surrogateescape") if isinstance(value, bytes) else value


def location_problem(location: str, folder: Path | None = None) -> str | None:
    """Why an external-data location would read outside the model's folder, or None when it stays inside."""
    posix = location.replace("\\", "/")
    if not location:
        return "is empty"
    if location == _ORT_MEMORY:
        return "makes onnxruntime read its own memory at the given offset"
    if "\0" in location or ":" in location:
        return "holds a NUL or colon (a drive, a URL scheme or an alternate data stream)"
    if posix.startswith(("/", "~")):
        return "is absolute"
    if ".." in posix.split("/"):
        return "climbs out of the model's folder"
    if folder is not None:
        return _link_problem(folder, posix)
    return None


def _link_problem(folder: Path, location: str) -> str | None:
    """A file (or a folder on its way) that is a link can lead anywhere, though the name stays inside."""
    path = folder
    for part in location.split("/"):
        path = path / part
        if path.is_symlink():
            return f"goes through the link {path}, which points to {path.readlink()}"
    return None


def _external(verdict: Verdict, where: str, text: str) -> Finding:
    title = {Verdict.unsafe: "ONNX external data reads outside the model"}.get(verdict, "ONNX external data malformed")
    rule = "MS-SCAN-ONNX-EXTERNAL" if verdict is Verdict.unsafe else "MS-SCAN-ONNX-MALFORMED"
    return issue(verdict, rule, title, where, text)
