"""Signed checkpoints: an Ed25519 signature over (log id, tree size, Merkle root, time), and the witness file.

The signed statement is plain text, so anyone can check it with any Ed25519 tool::

    modelshield audit checkpoint v1
    log <log id>
    size <number of records covered>
    root <RFC 6962 Merkle root, hex>
    time <microseconds since the epoch>

The witness file is the same checkpoints as JSON lines, appended (and fsynced) outside the database, ideally on
another machine or WORM storage: it is what makes deleting the newest checkpoints, or rolling the whole
database back, detectable.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from modelshield.audit.keys import key_id
from modelshield.core.errors import FormatError


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


def append_witness(path: Path, checkpoint: Checkpoint) -> None:
    """Append one checkpoint to the witness file and fsync it, so it survives a crash of this machine."""
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(checkpoint.to_json(), sort_keys=True, separators=(",", ":")) + "\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)


def read_witness(path: Path) -> list[Checkpoint]:
    """Every checkpoint in a witness file, in file order; a malformed line is an error, not skipped."""
    found = []
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                doc = json.loads(line)
                cp = Checkpoint(**{k: doc[k] for k in ("log_id", "seq", "created_at", "root", "key_id", "signature")})
            except (ValueError, KeyError, TypeError):
                raise FormatError(f"witness file {path}, line {n}: not a modelshield checkpoint") from None
            if not isinstance(cp.seq, int) or not isinstance(cp.created_at, int):
                raise FormatError(f"witness file {path}, line {n}: seq and created_at must be integers")
            found.append(cp)
    return found
