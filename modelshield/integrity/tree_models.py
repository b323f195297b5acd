"""Native formats of gradient-boosting libraries: XGBoost's UBJSON and LightGBM's text model.

Both are plain data read by the library's own C++ parser — no Python objects, no code — so a file is
safe when it *is* that format: UBJSON that parses to its last byte as one object (the Universal Binary
JSON draft-12 types XGBoost writes, including typed, counted arrays), or LightGBM's UTF-8 ``key=value``
text opening with ``tree`` / ``version=v``. Anything else is not identified here and is left to the other
readers (an unidentified file is never safe).
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from modelshield.integrity.pickle_analysis import Data

_FIXED = {ord("i"): 1, ord("U"): 1, ord("I"): 2, ord("l"): 4, ord("L"): 8, ord("d"): 4, ord("D"): 8, ord("C"): 1}
_INTEGERS = {ord("i"): ">b", ord("U"): ">B", ord("I"): ">h", ord("l"): ">i", ord("L"): ">q"}
_EMPTY = {ord("Z"), ord("T"), ord("F")}
_MAX_DEPTH = 128
_LIGHTGBM_HEAD = b"tree\nversion=v"


def identify(data: Data) -> str | None:
    """``"xgboost-ubjson"`` or ``"lightgbm-text"`` when the bytes are exactly that format, else ``None``."""
    if data[:1] == b"{" and _is_ubjson(data):
        return "xgboost-ubjson"
    if data[: len(_LIGHTGBM_HEAD)] == _LIGHTGBM_HEAD and _is_text(data):
        return "lightgbm-text"
    return None


def _is_text(data: Data) -> bool:
    try:
        text = bytes(data).decode("utf-8")
    except UnicodeDecodeError:
        return False
    return "\0" not in text and all(line.replace("\t", "").replace("\r", "").isprintable() for line in text.split("\n"))


def _is_ubjson(data: Data) -> bool:
    try:
        end = _UbjReader(data).value(0, 0)
    except (ValueError, IndexError, struct.error):
        return False
    return end == len(data)


class _UbjReader:
    def __init__(self, data: Data) -> None:
        self.data = data

    def integer(self, pos: int) -> tuple[int, int]:
        """An integer with its own type marker (lengths and counts); returns (value, next position)."""
        marker = self.data[pos]
        if marker not in _INTEGERS:
            raise ValueError(f"length with type {chr(marker)!r}")
        size = _FIXED[marker]
        (value,) = struct.unpack(_INTEGERS[marker], self.data[pos + 1 : pos + 1 + size])
        if value < 0:
            raise ValueError("negative length")
        return value, pos + 1 + size

    def value(self, pos: int, depth: int, marker: int | None = None) -> int:
        """Skip one value (its marker at ``pos`` unless given); return the position after it."""
        if depth > _MAX_DEPTH:
            raise ValueError("nested too deep")
        if marker is None:
            marker, pos = self.data[pos], pos + 1
        if marker in _EMPTY:
            return pos
        if marker in _FIXED:
            return self.bounded(pos + _FIXED[marker])
        if marker in (ord("S"), ord("H")):
            length, pos = self.integer(pos)
            bytes(self.data[pos : pos + length]).decode("utf-8")
            return self.bounded(pos + length)
        if marker in (ord("["), ord("{")):
            return self.container(pos, depth, is_object=marker == ord("{"))
        raise ValueError(f"unknown UBJSON marker {marker!r}")

    def container(self, pos: int, depth: int, is_object: bool) -> int:
        close = ord("}") if is_object else ord("]")
        item_type = None
        if self.data[pos] == ord("$"):
            item_type, pos = self.data[pos + 1], pos + 2
            if self.data[pos] != ord("#"):
                raise ValueError("typed container without a count")
        if self.data[pos] == ord("#"):
            count, pos = self.integer(pos + 1)
            if item_type in _FIXED and not is_object:
                return self.bounded(pos + count * _FIXED[item_type])
            for _ in range(count):
                pos = self.item(pos, depth, is_object, item_type)
            return pos
        while self.data[pos] != close:
            pos = self.item(pos, depth, is_object, None)
        return pos + 1

    def item(self, pos: int, depth: int, is_object: bool, item_type: int | None) -> int:
        if is_object:
            length, pos = self.integer(pos)
            bytes(self.data[pos : pos + length]).decode("utf-8")
            pos = self.bounded(pos + length)
        return self.value(pos, depth + 1, item_type)

    def bounded(self, pos: int) -> int:
        if pos > len(self.data):
            raise ValueError("value runs past the end")
        return pos
