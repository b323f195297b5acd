"""Files written so a crash or a full disk never leaves half of one, and read back by content hash.

``atomic_output`` (a file object) and ``atomic_path`` (a file name, for libraries that write by name) are the
one way modelshield replaces a file (reports, SBOMs, weights, training history, keys, keyrings): written beside
its destination, fsynced, then renamed (or linked) into place. Secret files add a
private-mode check and PEM loading on top of it in ``modelshield.integrity.keys``.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

CHUNK = 1 << 20


@contextmanager
def atomic_path(dst: Path, mode: int = 0o600, exclusive: bool = False) -> Iterator[Path]:
    """A temporary file name beside ``dst`` for writers that want a name (safetensors, numpy); on success the file
    is fsynced and renamed into place, on failure removed, so ``dst`` is never left half written.

    The file is private (0600) while written; ``mode`` is what it gets in place. ``exclusive`` links it into
    place instead, which fails with ``FileExistsError`` if ``dst`` appeared meanwhile: two writers of a new key
    can never overwrite each other.
    """
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=dst.parent, prefix=f".{dst.name}.", suffix=".part")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        with tmp.open("rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        if exclusive:
            os.link(tmp, dst)
            tmp.unlink()
        else:
            os.replace(tmp, dst)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextmanager
def atomic_output(dst: Path, mode: int = 0o600, exclusive: bool = False) -> Iterator[BinaryIO]:
    """``atomic_path`` as an open binary file: write to it, and ``dst`` appears whole or not at all."""
    with atomic_path(dst, mode, exclusive) as tmp, tmp.open("wb") as f:
        yield f


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


__all__ = ["atomic_output", "atomic_path", "hash_file"]


def load_yaml(path: Path) -> Any:
    """A user's YAML file, parsed safely; bad YAML or text that is not UTF-8 is one ``InputError`` naming the file
    and the line (callers check that the file exists: each says in its own words what it looked for)."""
    import yaml

    from modelshield.core.errors import InputError

    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise InputError(f"{path} is not valid YAML{at}: {problem}") from None
    except UnicodeDecodeError:
        raise InputError(f"{path} is not UTF-8 text") from None
