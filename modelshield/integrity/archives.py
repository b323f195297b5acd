"""Zip and tar archives, walked member by member with limits, since a bomb or a path escape is an attack.

Members are handed back to the scanner, which reads each by content: a pickle hidden under an
innocent name, or an archive inside an archive, is found all the same.
"""

from __future__ import annotations

import io
import mmap
import re
import struct
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import IO, TYPE_CHECKING, Any

from modelshield.integrity.allowlist import Verdict
from modelshield.integrity.pickle_analysis import Data
from modelshield.integrity.results import issue
from modelshield.integrity.zipread import Entry, MemberMismatch, ZipFormatError, member_bytes

if TYPE_CHECKING:  # pydantic is imported only when a finding is made
    from modelshield.core.findings import Finding

_TORCH_DATA = re.compile(r"(^|/)(data/\d+|\.data/[^/]+|byteorder|version|\.format_version|\.storage_alignment)$")


@dataclass(frozen=True)
class Limits:
    """Bounds that keep a hostile archive from exhausting the scanner."""

    max_depth: int = 6
    max_members: int = 10_000
    max_bytes: int = 4 << 30  # decompressed bytes per member read into memory
    max_ratio: float = 200.0  # decompressed / compressed, for members above 1 MiB


class _Mapped(io.RawIOBase):
    """A seekable file over a memory map (``mmap`` lacks ``seekable`` before Python 3.13)."""

    def __init__(self, data: mmap.mmap) -> None:
        self.data, self.pos = data, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self.pos = max(0, offset + (0, self.pos, len(self.data))[whence])
        return self.pos

    def readinto(self, buffer: Any) -> int:
        chunk = self.data[self.pos : self.pos + len(buffer)]
        buffer[: len(chunk)] = chunk
        self.pos += len(chunk)
        return len(chunk)


def _stream(data: Data) -> IO[bytes]:
    raw = io.BytesIO(data) if isinstance(data, bytes | bytearray) else _Mapped(data)
    return raw  # type: ignore[return-value]


def zipfile_opens(data: Data) -> bool:
    """Whether Python's ``zipfile`` opens the bytes as an archive (its own, more lenient, judgement)."""
    try:
        with zipfile.ZipFile(_stream(data)) as zf:
            return bool(zf.infolist())
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, struct.error):
        return False


def escapes(name: str) -> bool:
    """True for a member or link name that would land outside the folder it is unpacked into."""
    posix = name.replace("\\", "/")
    return posix.startswith("/") or bool(re.match(r"^[A-Za-z]:", posix)) or ".." in PurePosixPath(posix).parts


def zip_kind(names: list[str]) -> str:
    """Name what a zip holds: a torch.save checkpoint, a Keras v3 model, an .npz, or just a zip."""
    if any(n == "data.pkl" or n.endswith("/data.pkl") for n in names):
        return "pytorch"
    if "config.json" in names and "metadata.json" in names:
        return "keras"
    if names and all(n.endswith(".npy") for n in names):
        return "npz"
    return "zip"


Member = tuple[str, bytes, tuple[int, int]]  # name, content, where its bytes lie in the archive
Emit = Callable[["Finding"], None]


def zip_members(data: Data, entries: list[Entry], where: str, limits: Limits, emit: Emit) -> Iterator[Member]:
    """Yield the zip members that can hold code, as one loader reads them; flag bombs and escapes on the way."""
    torch_layout = zip_kind([e.name for e in entries]) == "pytorch"
    for entry in _bounded(entries, where, limits, emit):
        name = f"{where}!{entry.name}"
        if escapes(entry.name):
            emit(_escape(name, entry.name))
        if entry.name.endswith("/") or (torch_layout and _TORCH_DATA.search(entry.name)):
            continue  # torch reads data/N as raw storage bytes, never unpickles them
        if entry.usize > 1 << 20 and entry.usize > limits.max_ratio * max(entry.csize, 1):
            emit(issue(Verdict.unsafe, "MS-SCAN-ARC-BOMB", "Archive member is a decompression bomb", name,
                       f"expands {entry.csize} bytes to {entry.usize}"))  # fmt: skip
            continue
        try:
            body = member_bytes(data, entry, limits.max_bytes)
        except MemberMismatch as exc:  # refused, and its bytes judged too: a streaming reader runs them first
            emit(issue(Verdict.unparsed, "MS-SCAN-UNPARSED", "Archive member could not be read", name, str(exc)))
            body = exc.body
        except (ZipFormatError, zlib.error, OSError, EOFError, ValueError) as exc:
            emit(issue(Verdict.unparsed, "MS-SCAN-UNPARSED", "Archive member could not be read", name, str(exc)))
            continue
        if _within(body, name, limits, emit):
            yield name, body, (entry.start, entry.end)


def tar_members(data: Data, where: str, limits: Limits, emit: Emit) -> Iterator[Member]:
    """Yield a tar's regular files; links, devices, escaping and repeated names are flagged, never followed."""
    with tarfile.open(fileobj=_stream(data), mode="r:") as tf:
        members = tf.getmembers()
        names = [m.name for m in members]
        for repeated in sorted({n for n in names if names.count(n) > 1}):  # getmember() and extraction take the last
            emit(issue(Verdict.unsafe, "MS-SCAN-ARC-AMBIGUOUS", "Ambiguous archive: loaders would read different files",
                       where, f"{names.count(repeated)} members are named {repeated!r}"))  # fmt: skip
        for member in _bounded(members, where, limits, emit):
            name = f"{where}!{member.name}"
            if escapes(member.name) or ((member.issym() or member.islnk()) and escapes(member.linkname)):
                emit(_escape(name, member.name))
            if member.issym() or member.islnk() or member.isdev() or member.isfifo():
                emit(issue(Verdict.unsafe, "MS-SCAN-ARC-LINK", "Archive holds a link or device", name,
                           f"{member.name} is a link or special file, which can redirect reads or writes"))  # fmt: skip
            if member.isfile():
                f = tf.extractfile(member)
                body = f.read(limits.max_bytes + 1) if f else b""
                if _within(body, name, limits, emit):
                    yield name, body, (member.offset_data, member.offset_data + member.size)


def _bounded(items: list, where: str, limits: Limits, emit: Emit) -> list:
    if len(items) > limits.max_members:
        emit(issue(Verdict.unparsed, "MS-SCAN-ARC-LIMIT", "Archive has too many members", where,
                   f"{len(items)} members, over the limit of {limits.max_members}; the rest were not scanned"))  # fmt: skip
    return items[: limits.max_members]


def _within(body: bytes, name: str, limits: Limits, emit: Emit) -> bool:
    if len(body) <= limits.max_bytes:
        return True
    emit(issue(Verdict.unparsed, "MS-SCAN-ARC-LIMIT", "Archive member too large to scan", name,
               f"over {limits.max_bytes} bytes decompressed; not scanned"))  # fmt: skip
    return False


def _escape(name: str, member: str) -> Finding:
    return issue(Verdict.unsafe, "MS-SCAN-ARC-TRAVERSAL", "Archive member escapes its folder", name,
                 f"{member!r} would be written outside the folder it is unpacked into")  # fmt: skip
