"""The legacy (non-zip) ``torch.save`` stream, walked exactly as ``torch.load``'s ``_legacy_load`` reads it.

``torch.save(obj, f, _use_new_zipfile_serialization=False)`` writes five pickles — the magic number, the
protocol version (1001), a sys_info dict, the object (tensors as persistent ids naming a storage key,
type and element count) and the sorted list of storage keys — then, for each key in that list, an int64
element count and the storage's raw bytes. Every key must be one the object pickle declared, with the
count it declared; anything after the last storage is unaccounted for and fails.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Any

from modelshield.integrity.allowlist import Verdict
from modelshield.integrity.results import issue

if TYPE_CHECKING:  # pydantic is imported only when a finding is made
    from modelshield.core.findings import Finding

MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
PROTOCOL_VERSION = 1001
_ELEMENT_SIZE = {
    "Double": 8, "Float": 4, "Half": 2, "BFloat16": 2, "Long": 8, "Int": 4, "Short": 2, "Char": 1, "Byte": 1,
    "Bool": 1, "ComplexDouble": 16, "ComplexFloat": 8, "QInt8": 1, "QUInt8": 1, "QInt32": 4, "Untyped": 1,
}  # fmt: skip
_STORAGE = re.compile(r"torch\.(?:storage\.)?(\w+?)Storage$")


def walk(stream: IO[bytes], persistent_ids: list[Any], read_pickle: Callable[[], Any]) -> None:
    """After the magic pickle: check the header pickles, then skip each raw storage; raise on any mismatch."""
    if read_pickle() != PROTOCOL_VERSION:
        raise ValueError("legacy torch file with an unknown protocol version")
    if not isinstance(read_pickle(), dict):
        raise ValueError("legacy torch file without its sys_info dict")
    read_pickle()  # the object: judged like any pickle, its storages collected as persistent ids
    declared = _declared_storages(persistent_ids)
    keys = read_pickle()
    if not (isinstance(keys, list) and all(isinstance(k, str) for k in keys)):
        raise ValueError("legacy torch file without its list of storage keys")
    for key in keys:
        if key not in declared:
            raise ValueError(f"legacy torch storage {key!r} is not referenced by the object")
        numel, element_size = declared[key]
        found = int.from_bytes(_read(stream, 8), "little", signed=True)
        if found != numel:
            raise ValueError(f"legacy torch storage {key!r} holds {found} elements, the object declared {numel}")
        end = stream.tell() + numel * element_size
        stream.seek(0, io.SEEK_END)
        if stream.tell() < end:
            raise ValueError(f"legacy torch storage {key!r} is cut short")
        stream.seek(end)


def trailing(stream: IO[bytes], where: str) -> list[Finding]:
    """Bytes after the last storage: nothing torch reads, so nothing a benign file has."""
    if not stream.read(1):
        return []
    return [issue(Verdict.unknown, "MS-SCAN-PKL-TRAILING", "Data after the last storage", where,
                  "bytes follow the legacy torch file's storages that torch.load never reads")]  # fmt: skip


def _declared_storages(persistent_ids: list[Any]) -> dict[str, tuple[int, int]]:
    """key → (element count, element size) from ``('storage', torch.XStorage, key, location, numel, view)``."""
    declared: dict[str, tuple[int, int]] = {}
    for pid in persistent_ids:
        if isinstance(pid, tuple) and pid[:1] == ("module",):
            continue  # a module class with its source text, which torch only compares and warns about
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise ValueError(f"legacy torch persistent id {pid!r} is not a storage reference")
        kind = _STORAGE.match(getattr(pid[1], "dotted", ""))
        if kind is None or kind.group(1) not in _ELEMENT_SIZE or not isinstance(pid[2], str) or type(pid[4]) is not int:
            raise ValueError(f"legacy torch storage reference {pid!r} is not understood")
        declared[pid[2]] = (pid[4], _ELEMENT_SIZE[kind.group(1)])
    return declared


def _read(stream: IO[bytes], n: int) -> bytes:
    chunk = stream.read(n)
    if len(chunk) != n:
        raise ValueError("legacy torch file ends inside a storage header")
    return chunk
