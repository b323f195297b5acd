"""Signed checkpoints: an Ed25519 signature over (log id, tree size, Merkle root, time), and the witness file.

The signed statement is plain text, so anyone can check it with any Ed25519 tool::

    modelshield audit checkpoint v1
    log <log id>
    size <number of records covered>
    root <RFC 6962 Merkle root, hex>
    time <microseconds since the epoch>

The witness file is the same checkpoints as JSON lines, appended (and fsynced) outside the database, ideally on
another machine or WORM storage: it is what makes deleting the newest checkpoints, or rolling the whole
database back, detectable. Appends are whole lines or nothing (see ``append_witness``).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import errno
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from modelshield.audit.keys import key_id
from modelshield.core.errors import FormatError

log = logging.getLogger(__name__)
_FIELDS = ("log_id", "seq", "created_at", "root", "key_id", "signature")
_TAIL_BYTES = 65536  # a checkpoint line is under 1 KiB; a longer unterminated tail is not ours to cut


@dataclass(frozen=True)
class Checkpoint:
    """A signed statement that records 1..``seq`` hash to ``root``."""

    log_id: str
    seq: int
    created_at: int
    root: str
    key_id: str
    signature: str

    def statement(self) -> bytes:
        return statement(self.log_id, self.seq, self.root, self.created_at)

    def signature_valid(self, public_key: Ed25519PublicKey) -> bool:
        """True when ``public_key`` signed exactly this statement."""
        try:
            public_key.verify(base64.b64decode(self.signature, validate=True), self.statement())
        except (InvalidSignature, binascii.Error, ValueError):
            return False
        return True

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def statement(log_id: str, seq: int, root: str, created_at: int) -> bytes:
    """The exact bytes that are signed."""
    return f"modelshield audit checkpoint v1\nlog {log_id}\nsize {seq}\nroot {root}\ntime {created_at}\n".encode()


def sign(private_key: Ed25519PrivateKey, log_id: str, seq: int, root: str, created_at: int) -> Checkpoint:
    signature = base64.b64encode(private_key.sign(statement(log_id, seq, root, created_at))).decode("ascii")
    return Checkpoint(log_id, seq, created_at, root, key_id(private_key.public_key()), signature)


def _line(checkpoint: Checkpoint) -> bytes:
    return json.dumps(checkpoint.to_json(), sort_keys=True, separators=(",", ":")).encode("utf-8") + b"\n"


def _parse(line: bytes) -> Checkpoint | None:
    """The checkpoint on one witness line, or None if it is not one."""
    try:
        doc = json.loads(line)
        cp = Checkpoint(**{k: doc[k] for k in _FIELDS})
    except (ValueError, KeyError, TypeError):
        return None
    if not isinstance(cp.seq, int) or not isinstance(cp.created_at, int):
        return None
    return cp


def append_witness(path: Path, checkpoints: Sequence[Checkpoint]) -> None:
    """Append checkpoints to the witness file as whole lines and fsync it, so they survive a crash of this machine.

    One ``O_APPEND`` write under an exclusive ``flock`` (several gateway processes may share the file); a write
    cut short (disk full) or a failed fsync is cut back off before the error is raised, so the file never ends
    in a torn line, and a torn line left by a crash in the middle of an earlier append is removed first.
    """
    import fcntl  # POSIX only, like the witness file's flock; importing modelshield.audit works everywhere

    path.parent.mkdir(parents=True, exist_ok=True)
    payload = b"".join(_line(cp) for cp in checkpoints)
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        size = _end_on_a_line(fd, path)
        try:
            written = os.write(fd, payload)
            if written != len(payload):
                raise OSError(errno.ENOSPC, f"only {written} of {len(payload)} bytes written (disk full?)")
            os.fsync(fd)
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, size)
                os.fsync(fd)
            raise
    finally:
        os.close(fd)


def _end_on_a_line(fd: int, path: Path) -> int:
    """Make the file end with a complete line (dropping a torn last line); its size afterwards."""
    size = os.fstat(fd).st_size
    start = max(0, size - _TAIL_BYTES)
    tail = os.pread(fd, size - start, start)
    if not tail or tail.endswith(b"\n"):
        return size
    cut = tail.rfind(b"\n")
    if cut < 0 and start > 0:
        raise OSError(errno.EINVAL, f"it ends with over {_TAIL_BYTES} bytes that are not a checkpoint line")
    if _parse(tail[cut + 1 :]) is not None:  # a whole checkpoint that lost only its newline: keep it
        os.write(fd, b"\n")
        return size + 1
    log.warning(
        "witness file %s ended with a torn line (%d bytes, an interrupted append): removed it",
        path,
        len(tail) - cut - 1,
    )
    os.ftruncate(fd, start + cut + 1)
    return start + cut + 1


@dataclass(frozen=True)
class Witness:
    """A witness file's checkpoints, in file order, and the size of a torn last line (0 if none)."""

    checkpoints: list[Checkpoint]
    torn_tail: int = 0


def read_witness(path: Path) -> Witness:
    """Every checkpoint in a witness file; a malformed line is an error, not skipped — except a torn last line
    (no newline: an append cut short by a crash), which is reported in ``torn_tail``."""
    data = path.read_bytes()
    *lines, tail = data.split(b"\n")
    found = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        cp = _parse(line)
        if cp is None:
            raise FormatError(f"witness file {path}, line {n}: not a modelshield checkpoint")
        found.append(cp)
    last = _parse(tail) if tail.strip() else None
    if last is not None:
        found.append(last)
    return Witness(found, len(tail) if tail.strip() and last is None else 0)
