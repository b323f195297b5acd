"""Files written so a crash or a full disk never leaves half of one, and read back by content hash.

``atomic_output`` is the one way modelshield replaces a file (reports, SBOMs, training history, keys,
keyrings): written beside its destination, fsynced, then renamed (or linked) into place. Secret files add a
private-mode check and PEM loading on top of it in ``modelshield.integrity.keys``.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

CHUNK = 1 << 20


@contextmanager
def atomic_output(dst: Path, mode: int = 0o600, exclusive: bool = False) -> Iterator[BinaryIO]:
    """Write beside ``dst`` and rename only on success, so a failure leaves no partial file and clobbers nothing.

    The file is private (0600) while written and fsynced before it is renamed; ``mode`` is what it gets
    when it is renamed into place. ``exclusive`` links it into place instead, which fails with
    ``FileExistsError`` if ``dst`` appeared meanwhile: two writers of a new key can never overwrite each other.
    """
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dst.parent, prefix=f".{dst.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        if exclusive:
            os.link(tmp, dst)
            os.unlink(tmp)
        else:
            os.replace(tmp, dst)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def hash_file(path: Path) -> tuple[str, int]:
    """SHA-256 hex digest and size, streamed in 1 MiB chunks into one reused buffer: memory stays flat."""
    h = hashlib.sha256()
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    size = 0
    with path.open("rb", buffering=0) as f:
        while n := f.readinto(buf):
            h.update(view[:n])
            size += n
    return h.hexdigest(), size


__all__ = ["atomic_output", "hash_file"]
