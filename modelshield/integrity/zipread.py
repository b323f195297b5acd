"""Zip archives read the way their loaders read them, and refused where two loaders would read different files.

torch's ``PyTorchStreamReader`` (miniz) takes the central directory's offset from the end record as
it stands; Python's ``zipfile`` (numpy, Keras, skops) shifts every offset by the bytes found before
the archive. Both look for the end record the same way: the last signature within the 64 KiB comment
window at the end of the file. A file built so that they disagree — a second central directory, a
prepended archive, local headers that contradict the directory, names that collide once truncated at
a NUL or compared without case as miniz does — lets a scanner read one archive while the loader runs
another. Every such ambiguity is reported, and each loader's reading is returned so both are scanned.
"""

from __future__ import annotations

import bz2
import struct
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from modelshield.integrity.pickle_analysis import Data

END, CENTRAL, LOCAL, DESCRIPTOR = b"PK\x05\x06", b"PK\x01\x02", b"PK\x03\x04", b"PK\x07\x08"
Z64_LOCATOR, Z64_END = b"PK\x06\x07", b"PK\x06\x06"
_END = struct.Struct("<4s4H2LH")
_Z64_LOCATOR = struct.Struct("<4sLQL")
_Z64_END = struct.Struct("<4sQ2H2L4Q")
_CENTRAL = struct.Struct("<4s6H3L5H2L")
_LOCAL = struct.Struct("<4s5H3L2H")
_WINDOW = 0xFFFF + _END.size  # the longest comment plus the end record
_U16, _U32 = 0xFFFF, 0xFFFFFFFF
_ENCRYPTED, _DESCRIPTOR, _UTF8 = 0x1, 0x8, 0x800


class ZipFormatError(ValueError):
    """The archive cannot be read the way its loader would read it."""


class MemberMismatch(ZipFormatError):
    """A member's bytes contradict its directory entry's size or CRC. ``zipfile`` checks only at the end of
    the stream, after a streaming reader (``pickle.load(zf.open(name))``) has run them: they are kept."""

    def __init__(self, message: str, body: bytes) -> None:
        super().__init__(message)
        self.body = body


@dataclass(frozen=True)
class Entry:
    """One member as a loader sees it: offsets are absolute positions in the file."""

    name: str
    method: int
    flags: int
    crc: int
    csize: int
    usize: int
    header: int
    start: int

    @property
    def end(self) -> int:
        return self.start + self.csize


@dataclass
class Reading:
    """The members one loader would find; ``error`` when that loader would fail to read the archive."""

    loader: str
    entries: list[Entry] = field(default_factory=list)
    error: str = ""


@dataclass
class Layout:
    """Every loader's reading of one archive (bytes ``start`` to ``end`` of the file), and what makes them disagree."""

    start: int
    end_record: int
    end: int
    readings: list[Reading]
    ambiguities: list[str]


def find_end(data: Data) -> int | None:
    """Where ``zipfile`` and miniz find the end record: the last signature with room for a whole record."""
    size, low = len(data), max(0, len(data) - _WINDOW)
    pos = data.rfind(END, low)
    while pos >= 0 and size - pos < _END.size:
        pos = data.rfind(END, low, pos + len(END) - 1)
    return pos if pos >= 0 else None


def read_layout(data: Data) -> Layout | None:
    """Both loaders' readings of the zip whose end record closes ``data``; None when there is none."""
    end = find_end(data)
    if end is None:
        return None
    _, disk, cd_disk, n_disk, n_total, cd_size, cd_offset, comment = _END.unpack_from(data, end)
    if disk or cd_disk or n_disk != n_total:
        raise ZipFormatError("the archive claims to span several disks")
    ambiguities = []
    if end + _END.size + comment != len(data):
        ambiguities.append(f"{len(data) - end - _END.size - comment} bytes after the end record and its comment")
    cd_end = end
    z64 = _zip64(data, end)
    if z64 is not None:
        cd_end, n64, size64, offset64 = z64
        pairs = ((n_total, n64, _U16), (cd_size, size64, _U32), (cd_offset, offset64, _U32))
        if any(short not in (full, mask) for short, full, mask in pairs):
            ambiguities.append("the end record and the zip64 end record disagree")
        n_total, cd_size, cd_offset = n64, size64, offset64
    shift = cd_end - cd_size - cd_offset
    if shift < 0:
        raise ZipFormatError("the central directory overlaps the end record")
    if shift and data[:4] == LOCAL:
        ambiguities.append(f"{shift} bytes precede the archive's own start: zipfile shifts every offset by them, "
                           "torch does not, so the two read different central directories")  # fmt: skip
    elif shift:
        ambiguities.append(f"{shift} bytes before the first local header, which loaders reading from offset 0 "
                           "take for another file")  # fmt: skip
    if z64 is not None and _Z64_LOCATOR.unpack_from(data, end - _Z64_LOCATOR.size)[2] + shift != cd_end:
        ambiguities.append("the zip64 locator points somewhere other than the zip64 end record")
    readings = [_read("zipfile", data, shift, cd_offset, cd_size, n_total, ambiguities)]
    if shift and data[:4] == LOCAL:  # torch opens a file as a zip only when it starts with a local header
        readings.insert(0, _read("torch", data, 0, cd_offset, cd_size, n_total, []))
    return Layout(shift, end, end + _END.size + comment, readings, ambiguities)


def archive_sequence(data: Data) -> list[tuple[int, int]] | None:
    """The spans of whole archives laid back to back, each opening with a local header and closed by an end
    record whose directory sits just before it at its own offsets (torch.distributed.checkpoint's ``.distcp``
    holds one ``torch.save`` zip per tensor, read by offset and length); None when the data is not that."""
    spans, pos, size = [], 0, len(data)
    while pos < size:
        if data[pos : pos + 4] != LOCAL:
            return None
        end = _closing_end_record(data, pos)
        if end is None:
            return None
        spans.append((pos, end))
        pos = end
    return spans if len(spans) > 1 else None


def _closing_end_record(data: Data, start: int) -> int | None:
    """The end of the first archive starting at ``start``: its end record's directory lies right before it."""
    pos = data.find(END, start)
    while pos >= 0 and len(data) - pos >= _END.size:
        _, disk, _, _, _, cd_size, cd_offset, comment = _END.unpack_from(data, pos)
        z64 = _zip64(data, pos)
        cd_end, cd_size, cd_offset = (z64[0], z64[2], z64[3]) if z64 else (pos, cd_size, cd_offset)
        if not disk and cd_end - cd_size - cd_offset == start and data[start + cd_offset : start + cd_offset + 4] in (
            CENTRAL, END, Z64_END,  # an empty archive's directory is its end record itself
        ):  # fmt: skip
            return pos + _END.size + comment
        pos = data.find(END, pos + 1)
    return None


def end_records(data: Data, skip: Sequence[tuple[int, int]] = ()) -> list[int]:
    """Every end record that leads to a central directory, outside the ``skip`` ranges, found at C speed (``find``)."""
    found, pos = [], 0
    for start, stop in sorted(skip):
        found += _end_records_in(data, pos, start)
        pos = max(pos, stop)
    return found + _end_records_in(data, pos, len(data))


def _end_records_in(data: Data, start: int, stop: int) -> list[int]:
    found, pos = [], data.find(END, start, stop + len(END) - 1) if start < stop else -1
    while pos >= 0:
        if _leads_to_directory(data, pos):
            found.append(pos)
        pos = data.find(END, pos + 1, stop + len(END) - 1)
    return found


def _leads_to_directory(data: Data, pos: int) -> bool:
    if len(data) - pos < _END.size:
        return False
    _, disk, cd_disk, n_disk, n_total, cd_size, cd_offset, _ = _END.unpack_from(data, pos)
    if disk or cd_disk or n_disk != n_total:
        return False
    if _U32 in (cd_size, cd_offset):
        return pos >= _Z64_LOCATOR.size and data[pos - _Z64_LOCATOR.size : pos - _Z64_LOCATOR.size + 4] == Z64_LOCATOR
    starts = {p for p in (cd_offset, pos - cd_size) if 0 <= p < pos}
    return cd_size > 0 and any(data[p : p + 4] == CENTRAL for p in starts)


def _zip64(data: Data, end: int) -> tuple[int, int, int, int] | None:
    """(record position, members, directory size, directory offset) from a zip64 end record, if there is one."""
    locator = end - _Z64_LOCATOR.size
    if locator < 0 or data[locator : locator + 4] != Z64_LOCATOR:
        return None
    record = locator - _Z64_END.size  # where zipfile reads it; miniz follows the locator's offset (checked above)
    if record < 0 or data[record : record + 4] != Z64_END:
        raise ZipFormatError("a zip64 locator without the zip64 end record before it")
    _, size, _, _, disk, cd_disk, n_disk, n_total, cd_size, cd_offset = _Z64_END.unpack_from(data, record)
    if size != _Z64_END.size - 12 or disk or cd_disk or n_disk != n_total:
        raise ZipFormatError("the zip64 end record has extensible data or spans several disks")
    return record, n_total, cd_size, cd_offset


def _read(loader: str, data: Data, base: int, cd_offset: int, cd_size: int, count: int, out: list[str]) -> Reading:
    """One loader's reading: ``base`` is the shift it applies to offsets (0 for torch). zipfile reads headers
    until the directory's size is used up; miniz reads as many as the end record counts."""
    try:
        limit = count if loader == "torch" else None
        entries = list(_central(data, base + cd_offset, cd_size, base, out, limit))
        if len(entries) != count:
            out.append(f"the end record counts {count} members, the central directory holds {len(entries)}")
        _check_names(entries, out)
        _check_contiguous(data, entries, base, base + cd_offset, out)
    except (ZipFormatError, struct.error, UnicodeDecodeError) as exc:
        return Reading(loader, error=f"{type(exc).__name__}: {exc}")
    return Reading(loader, entries)


def _central(data: Data, pos: int, size: int, base: int, out: list[str], limit: int | None) -> Iterator[Entry]:
    stop, read = pos + size, 0
    if stop > len(data):
        raise ZipFormatError("the central directory runs past the end of the file")
    while pos < stop and (limit is None or read < limit):
        read += 1
        if data[pos : pos + 4] != CENTRAL:
            raise ZipFormatError(f"no central directory header at offset {pos}")
        fields = _CENTRAL.unpack_from(data, pos)
        flags, method, crc, csize, usize, n_name, n_extra, n_comment, disk, offset = (
            fields[3], fields[4], *fields[7:14], fields[16]
        )  # fmt: skip
        raw = bytes(data[pos + 46 : pos + 46 + n_name])
        extra = bytes(data[pos + 46 + n_name : pos + 46 + n_name + n_extra])
        usize, csize, offset = _widen(extra, usize, csize, offset)
        if disk:
            raise ZipFormatError("a member on another disk")
        if 0x7075 in dict(_extras(extra)):
            out.append(f"member {raw!r} carries a second, Unicode name that newer zipfile versions prefer")
        name = raw.decode("utf-8") if flags & _UTF8 else raw.decode("cp437")
        header = base + offset
        start = _local(data, header, raw, flags, method, (crc, csize, usize), out)
        if start is not None:  # a loader fails on this member alone, and still reads the others
            yield Entry(name, method, flags, crc, csize, usize, header, start)
        pos += _CENTRAL.size + n_name + n_extra + n_comment
    if pos > stop:
        raise ZipFormatError("the last central directory header runs past the directory's size")


def _local(
    data: Data, header: int, raw: bytes, flags: int, method: int, sums: tuple[int, int, int], out: list[str]
) -> int | None:
    """Check the local header against the directory (zipfile compares names; miniz trusts either); return the
    data start, or None when there is no local header there."""
    if data[header : header + 4] != LOCAL:
        out.append(f"member {raw!r} points to offset {header}, where no local header is")
        return None
    _, _, l_flags, l_method, _, _, crc, csize, usize, n_name, n_extra = _LOCAL.unpack_from(data, header)
    l_raw = bytes(data[header + 30 : header + 30 + n_name])
    l_extra = bytes(data[header + 30 + n_name : header + 30 + n_name + n_extra])
    if l_raw != raw:
        out.append(f"member {raw!r} is named {l_raw!r} in its local header")
    if l_method != method or (l_flags ^ flags) & (_ENCRYPTED | _DESCRIPTOR | _UTF8):
        out.append(f"member {raw!r}: local header and central directory give different methods or flags")
    if not l_flags & _DESCRIPTOR:
        usize, csize, _ = _widen(l_extra, usize, csize, 0)
        if (crc, csize, usize) != sums:
            out.append(f"member {raw!r}: local header and central directory give different sizes or CRCs")
    return header + 30 + n_name + n_extra


def _extras(extra: bytes) -> Iterator[tuple[int, bytes]]:
    pos = 0
    while pos + 4 <= len(extra):
        tag, size = struct.unpack_from("<2H", extra, pos)
        yield tag, extra[pos + 4 : pos + 4 + size]
        pos += 4 + size


def _widen(extra: bytes, usize: int, csize: int, offset: int) -> tuple[int, int, int]:
    """Apply a zip64 extra field: each saturated 32-bit value is read from it, in the order the spec fixes."""
    body = dict(_extras(extra)).get(0x0001, b"")
    values, pos = [usize, csize, offset], 0
    for i, value in enumerate(values):
        if value == _U32 and pos + 8 <= len(body):
            values[i] = struct.unpack_from("<Q", body, pos)[0]
            pos += 8
    return values[0], values[1], values[2]


def _check_names(entries: list[Entry], out: list[str]) -> None:
    """zipfile keeps the last of two equal names and truncates at NUL; miniz matches without case."""
    seen: dict[str, str] = {}
    for entry in entries:
        if "\0" in entry.name:
            out.append(f"member {entry.name!r} has a NUL in its name, which zipfile cuts off")
        key = entry.name.split("\0")[0].replace("\\", "/").lower()
        if key in seen:
            out.append(f"members {seen[key]!r} and {entry.name!r} have the same name to some loader")
        seen[key] = entry.name


def _check_contiguous(data: Data, entries: list[Entry], start: int, cd_start: int, out: list[str]) -> None:
    """Members follow each other from the archive's start to its directory, with no byte left unaccounted for."""
    ends = {start}
    for entry in sorted(entries, key=lambda e: e.header):
        if entry.header not in ends:
            out.append(f"bytes before member {entry.name!r} (offset {entry.header}) belong to no member")
        if entry.end > cd_start:
            raise ZipFormatError(f"member {entry.name!r} runs into the central directory")
        ends = {entry.end + n for n in _descriptor_lengths(data, entry)}
    if cd_start not in ends:
        out.append("bytes between the last member and the central directory belong to no member")


def _descriptor_lengths(data: Data, entry: Entry) -> tuple[int, ...]:
    """Possible lengths of what follows a member's data: nothing, or a data descriptor (signature optional,
    CRC, 4- or 8-byte sizes)."""
    if not entry.flags & _DESCRIPTOR:
        return (0,)
    return (16, 24) if data[entry.end : entry.end + 4] == DESCRIPTOR else (12, 20)


def member_bytes(data: Data, entry: Entry, limit: int) -> bytes:
    """A member's content, at most ``limit + 1`` bytes of it (the caller reports a member over the limit)."""
    if entry.flags & _ENCRYPTED:
        raise ZipFormatError(f"member {entry.name!r} is encrypted")
    if entry.method == 0:
        body = bytes(data[entry.start : min(entry.end, entry.start + limit + 1)])
    elif entry.method == 8:
        body = zlib.decompressobj(-15).decompress(data[entry.start : entry.end], limit + 1)
    elif entry.method == 12:
        body = bz2.BZ2Decompressor().decompress(data[entry.start : entry.end], limit + 1)
    else:
        raise ZipFormatError(f"member {entry.name!r} uses compression method {entry.method}, which is not read")
    if len(body) <= limit and (len(body) != entry.usize or zlib.crc32(body) != entry.crc):
        raise MemberMismatch(f"member {entry.name!r} does not match the size and CRC its directory entry gives", body)
    return body
