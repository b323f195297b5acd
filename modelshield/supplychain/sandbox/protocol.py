"""Length-prefixed frames over pipes: a small JSON header plus NumPy arrays in .npy format.

    frame  = b"MSB1" | u64 body length | body
    body   = u32 header length | header (UTF-8 JSON object) | u32 array count | (u64 length | .npy bytes)*

Nothing is ever unpickled: arrays are parsed with ``allow_pickle=False`` (object arrays are
refused) and the header is plain JSON. The reader refuses a frame larger than its budget before
reading it, and with a deadline never blocks past it, so a hostile or stuck peer costs at most
the budget and the timeout.
"""

from __future__ import annotations

import io
import json
import os
import select
import struct
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

MAGIC = b"MSB1"
_PREFIX = struct.Struct(">4sQ")
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")
_MAX_HEADER = 1 << 20
_MAX_ARRAYS = 64


class ProtocolError(Exception):
    """The peer sent something that is not a well-formed frame."""


class PeerTimeout(Exception):
    """The deadline passed before the peer read or wrote a whole frame."""


class PeerClosed(Exception):
    """The peer closed its end of the pipe (it exited or was killed)."""


def _wait(fd: int, event: int, deadline: float | None) -> None:
    if deadline is None:
        return
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise PeerTimeout
    poller = select.poll()
    poller.register(fd, event | select.POLLHUP | select.POLLERR)
    if not poller.poll(remaining * 1000):
        raise PeerTimeout


def write_all(fd: int, data: bytes, deadline: float | None = None) -> None:
    """Write every byte, waiting at most until ``deadline`` (a time.monotonic value) when given."""
    view = memoryview(data)
    while view:
        _wait(fd, select.POLLOUT, deadline)
        try:
            written = os.write(fd, view)
        except BlockingIOError:
            continue
        except BrokenPipeError:
            raise PeerClosed from None
        view = view[written:]


def read_exact(fd: int, size: int, deadline: float | None = None) -> bytes:
    """Read exactly ``size`` bytes; PeerClosed on end of file, PeerTimeout past the deadline."""
    chunks, left = [], size
    while left:
        _wait(fd, select.POLLIN, deadline)
        try:
            chunk = os.read(fd, min(left, 1 << 20))
        except BlockingIOError:
            continue
        if not chunk:
            raise PeerClosed
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def encode(header: dict[str, Any], arrays: Sequence[np.ndarray] = ()) -> bytes:
    """One frame holding ``header`` and ``arrays``."""
    head = json.dumps(header, allow_nan=False).encode()
    parts = [_U32.pack(len(head)), head, _U32.pack(len(arrays))]
    for array in arrays:
        buffer = io.BytesIO()
        np.lib.format.write_array(buffer, np.ascontiguousarray(array), allow_pickle=False)
        parts += [_U64.pack(buffer.tell()), buffer.getvalue()]
    body = b"".join(parts)
    return _PREFIX.pack(MAGIC, len(body)) + body


def send(fd: int, header: dict[str, Any], arrays: Sequence[np.ndarray] = (), deadline: float | None = None) -> None:
    """Write one frame to ``fd``."""
    write_all(fd, encode(header, arrays), deadline)


def receive(fd: int, *, max_bytes: int, deadline: float | None = None) -> tuple[dict[str, Any], list[np.ndarray]]:
    """Read one frame: its header and arrays, refusing anything malformed or over ``max_bytes``."""
    magic, length = _PREFIX.unpack(read_exact(fd, _PREFIX.size, deadline))
    if magic != MAGIC:
        raise ProtocolError("the frame does not start with the protocol's magic bytes")
    if length > max_bytes:
        raise ProtocolError(f"a frame of {length} bytes is over the limit of {max_bytes}")
    return decode(read_exact(fd, length, deadline))


def decode(body: bytes) -> tuple[dict[str, Any], list[np.ndarray]]:
    """Parse a frame body (without its prefix)."""
    stream = io.BytesIO(body)

    def take(size: int) -> bytes:
        data = stream.read(size)
        if len(data) != size:
            raise ProtocolError("the frame ends early")
        return data

    (head_len,) = _U32.unpack(take(_U32.size))
    if head_len > _MAX_HEADER:
        raise ProtocolError(f"a header of {head_len} bytes is too large")
    try:
        header = json.loads(take(head_len))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ProtocolError(f"the header is not JSON: {e}") from None
    if not isinstance(header, dict):
        raise ProtocolError("the header is not a JSON object")
    (count,) = _U32.unpack(take(_U32.size))
    if count > _MAX_ARRAYS:
        raise ProtocolError(f"{count} arrays in one frame is too many")
    arrays = []
    for _ in range(count):
        (size,) = _U64.unpack(take(_U64.size))
        chunk = io.BytesIO(take(size))
        try:
            array = np.lib.format.read_array(chunk, allow_pickle=False)
        except (ValueError, TypeError, SyntaxError, OSError, EOFError) as e:
            raise ProtocolError(f"an array is not valid .npy data: {' '.join(str(e).split())[:200]}") from None
        if chunk.tell() != size:
            raise ProtocolError("an array's .npy data has trailing bytes")
        arrays.append(array)
    if stream.read(1):
        raise ProtocolError("the frame has trailing bytes")
    return header, arrays
