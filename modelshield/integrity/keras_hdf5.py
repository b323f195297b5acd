"""Keras model configs (``.keras`` v3 zips, legacy ``.h5``) and HDF5 files: what in them runs code or reads elsewhere.

A Keras config is data until it names code. Three ways it does, all caught wherever they sit in the
config (layers, nested models, activations, losses, initializers):
- a ``Lambda``/``TFOpLambda`` layer or a ``__lambda__`` object: Python bytecode run at load or predict; a
  ``TorchModuleWrapper``, whose module is a ``torch.save`` pickle loaded with ``weights_only=False``;
- marshalled bytecode anywhere (Keras writes a lambda *activation* as base64 ``marshal`` data with no
  class name at all — found by decoding every base64-looking string and checking for a code object);
- an object from a module outside Keras (``module`` / ``registered_name``): Keras 3 before 3.9 imports any
  module a config names (CVE-2025-1550), later ones need the user's custom objects; and functions of Keras
  itself that reach outside the model (``get_file`` — CVE-2025-8747, ``enable_unsafe_deserialization``).
HDF5 files are opened with h5py (read-only, nothing decoded but attributes): every JSON attribute is walked
as a config, and external links, external raw storage and virtual datasets — which make a reader open
other files — are flagged. Plain HDF5 data passes. Without h5py, configs are found in the raw bytes and
anything else is "unknown".
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import struct
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from modelshield.integrity.allowlist import Verdict, classify
from modelshield.integrity.results import issue

if TYPE_CHECKING:  # pydantic is imported only when a finding is made
    from modelshield.core.findings import Finding
    from modelshield.integrity.pickle_analysis import Data

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_KERAS_PACKAGES = frozenset({"keras", "keras_hub", "keras_cv", "keras_nlp", "tf_keras"})
_CODE_LAYERS = frozenset({"Lambda", "TFOpLambda", "__lambda__", "SlicingOpLambda"})
# TorchModuleWrapper keeps its module as base64 torch.save bytes, read back with torch.load(weights_only=False)
_PICKLE_LAYERS = frozenset({"TorchModuleWrapper"})
_GADGETS = frozenset({"get_file", "enable_unsafe_deserialization", "load_model", "load_weights", "save_model"})
_BASE64 = re.compile(r"[A-Za-z0-9+/=\n]{24,}")
_MARSHAL_CODE = (0x63, 0xE3)  # marshal's TYPE_CODE, without and with FLAG_REF


def check_keras_config(config: Any, where: str) -> list[Finding]:
    """Judge every object a Keras config names and every string in it that is marshalled code."""
    found: dict[str, Finding] = {}

    def add(verdict: Verdict, rule: str, title: str, text: str) -> None:
        found.setdefault(text, issue(verdict, rule, title, where, text))

    for path, node in _walk(config, "config"):
        if isinstance(node, str):
            if _is_marshalled_code(node):
                add(Verdict.unsafe, "MS-SCAN-KERAS-BYTECODE", "Keras config holds Python bytecode",
                    f"{path} is marshalled Python code, which Keras runs when the model loads or predicts")  # fmt: skip
            continue
        name, module = node.get("class_name"), node.get("module")
        if name in _CODE_LAYERS or node.get("function_type") == "lambda":
            add(Verdict.unsafe, "MS-SCAN-KERAS-LAMBDA", "Keras Lambda layer",
                f"{path}: a {name or 'lambda'} holds Python code that runs when the model loads or predicts")  # fmt: skip
            continue
        if not isinstance(name, str):
            continue
        if name in _PICKLE_LAYERS:
            add(Verdict.unsafe, "MS-SCAN-KERAS-PICKLE", "Keras layer holds a pickle",
                f"{path}: {name} is restored with torch.load(weights_only=False), which runs any pickle it holds")  # fmt: skip
            continue
        target = node.get("config") if name == "function" and isinstance(node.get("config"), str) else name
        registered = node.get("registered_name")
        if isinstance(module, str) and classify(f"{module}.{target}") is Verdict.unsafe:
            add(Verdict.unsafe, "MS-SCAN-KERAS-DANGEROUS", "Keras config names a dangerous callable",
                f"{path}: {module}.{target} can run code or touch the system when the model loads")  # fmt: skip
        elif isinstance(module, str) and module.split(".")[0] in _KERAS_PACKAGES and target in _GADGETS:
            add(Verdict.unsafe, "MS-SCAN-KERAS-GADGET", "Keras config calls a Keras function that reaches outside",
                f"{path}: {module}.{target} downloads, loads or unlocks code when the model loads")  # fmt: skip
        elif (isinstance(module, str) and module.split(".")[0] not in _KERAS_PACKAGES) or (
            isinstance(registered, str) and ">" in registered
        ):
            add(Verdict.unknown, "MS-SCAN-KERAS-CUSTOM", "Keras custom object",
                f"{path}: {module}.{target} (registered as {registered!r}) is user code from outside Keras")  # fmt: skip
    return list(found.values())


def _walk(node: Any, path: str) -> Iterator[tuple[str, Any]]:
    """Every dict naming a class, and every string, with where it sits."""
    if isinstance(node, dict):
        if "class_name" in node or "function_type" in node:
            yield path, node
        for key, value in node.items():
            yield from _walk(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _walk(value, f"{path}[{i}]")
    elif isinstance(node, str) and len(node) >= 24:
        yield path, node


def _is_marshalled_code(text: str) -> bool:
    if not _BASE64.fullmatch(text):
        return False
    try:
        raw = base64.b64decode(text.replace("\n", ""), validate=True)
    except (binascii.Error, ValueError):
        return False
    # a code object opens with its argument counts (int32): tiny numbers, unlike random bytes
    return len(raw) > 16 and raw[0] in _MARSHAL_CODE and all(n < 256 for n in struct.unpack("<3I", raw[1:13]))


def check_hdf5(data: Data, where: str) -> list[Finding]:
    """Walk an HDF5 file's attributes and links with h5py; without it, look for Keras configs in the bytes."""
    try:
        import h5py
    except ImportError:
        return _check_hdf5_bytes(data, where)
    import io

    try:
        handle = h5py.File(io.BytesIO(data) if isinstance(data, bytes | bytearray) else data, "r")
    except (OSError, ValueError) as exc:  # not HDF5 to h5py: still say what any config in the bytes would do
        configs = [f for f in _check_hdf5_bytes(data, where) if f.id != "MS-SCAN-HDF5"]
        return [issue(Verdict.unparsed, "MS-SCAN-HDF5", "HDF5 file could not be opened", where, str(exc)), *configs]
    with handle:
        try:
            return _Hdf5Walk(where).run(handle)
        except (OSError, KeyError, RuntimeError, ValueError, TypeError) as exc:  # h5py on a corrupt object
            return [issue(Verdict.unparsed, "MS-SCAN-HDF5", "HDF5 file could not be walked", where,
                          f"{type(exc).__name__}: {exc}")]  # fmt: skip


class _Hdf5Walk:
    def __init__(self, where: str) -> None:
        self.where = where
        self.found: list[Finding] = []

    def run(self, handle: Any) -> list[Finding]:
        import h5py

        self.attributes("/", handle)

        def visit(name: str, link: Any) -> None:
            if isinstance(link, h5py.ExternalLink):
                self.elsewhere(name, f"links to {link.filename}:{link.path}")
                return
            if isinstance(link, h5py.SoftLink):
                return
            obj = handle[name]
            self.attributes(name, obj)
            if isinstance(obj, h5py.Dataset) and (obj.external or obj.is_virtual):
                self.elsewhere(name, "keeps its data in other files (external storage or a virtual dataset)")

        handle.visititems_links(visit)
        return self.found

    def attributes(self, name: str, obj: Any) -> None:
        for key, value in obj.attrs.items():
            text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
            if isinstance(text, str) and text.lstrip().startswith(("{", "[")):
                try:
                    config = json.loads(text)
                except ValueError:
                    continue
                self.found += check_keras_config(config, f"{self.where}:{name}@{key}")

    def elsewhere(self, name: str, what: str) -> None:
        self.found.append(issue(Verdict.unknown, "MS-SCAN-HDF5-EXTERNAL", "HDF5 object reads another file",
                                self.where, f"{name} {what}; a reader opens that file"))  # fmt: skip


def _check_hdf5_bytes(data: Data, where: str) -> list[Finding]:
    """Without h5py: read Keras configs straight from the attribute bytes; anything else is unknown."""
    found, configs = [], 0
    for match in re.finditer(rb'\{"class_name": ?"[^"]+"', data):
        try:
            config, _ = json.JSONDecoder().raw_decode(
                bytes(data[match.start() : match.start() + (1 << 24)]).decode("utf-8", "replace")
            )
        except ValueError:
            continue
        configs += 1
        found += check_keras_config(config, where)
    if not configs:
        found.append(issue(Verdict.unknown, "MS-SCAN-HDF5", "HDF5 file not fully parsed", where,
                           "without h5py, HDF5 is read for Keras configs only; install h5py to judge the rest"))  # fmt: skip
    return found
