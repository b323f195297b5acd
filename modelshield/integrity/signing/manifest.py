"""The per-file digests of a model, computed the way OpenSSF model-signing computes them.

A model is a folder or a single file. Each regular file in the folder is one resource named by its relative
POSIX path (a single file is named ``.``); with the ``shards`` method each file is cut into ``shard_size``
pieces named ``path:start:end`` (empty files then have no piece). Files are hashed in parallel on a thread
pool (hashlib releases the GIL), shards too, so one huge file uses every core.

Symlinks are refused unless ``allow_symlinks`` (model-signing's default); even then a link must point at a
file inside the model folder. Ignored paths (``.git`` and friends, the signature itself, what the user names)
are pruned whole, so a repository's ``.git`` is never read.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from modelshield.core.errors import InputError, MissingFileError
from modelshield.integrity.archives import escapes

GIT_PATHS = (".git", ".gitattributes", ".github", ".gitignore")
HASH_TYPES: dict[str, Callable[[], Any]] = {"sha256": hashlib.sha256, "blake2b": hashlib.blake2b}
DEFAULT_SHARD_SIZE = 1_000_000_000
CHUNK = 1 << 20

Method = Literal["files", "shards"]


@dataclass(frozen=True)
class Serialization:
    """How the manifest was made; recorded in the signature so a verifier can redo exactly the same."""

    method: Method = "files"
    hash_type: str = "sha256"
    allow_symlinks: bool = False
    ignore_paths: tuple[str, ...] = ()
    shard_size: int | None = None

    @property
    def algorithm(self) -> str:
        """The ``algorithm`` each resource carries: ``sha256``, or ``sha256-sharded-<size>`` for shards."""
        return self.hash_type if self.method == "files" else f"{self.hash_type}-sharded-{self.shard_size}"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"method": self.method, "hash_type": self.hash_type}
        if self.method == "shards":
            out["shard_size"] = self.shard_size
        out["allow_symlinks"] = self.allow_symlinks
        if self.ignore_paths:
            out["ignore_paths"] = list(self.ignore_paths)
        return out


@dataclass(frozen=True)
class Manifest:
    """A model's name (informative only) and its resource digests (hex), in canonical order."""

    model_name: str
    serialization: Serialization
    digests: dict[str, str] = field(default_factory=dict)

    def resources(self) -> list[dict[str, str]]:
        """The in-toto resource descriptors, sorted as model-signing sorts them (by path parts, then offsets)."""
        algo = self.serialization.algorithm
        names = sorted(self.digests, key=lambda n: resource_sort_key(n, self.serialization.method))
        return [{"name": n, "algorithm": algo, "digest": self.digests[n]} for n in names]


def resource_sort_key(name: str, method: Method) -> tuple[Any, ...]:
    """Order like model-signing's manifest keys: paths compared part by part, shards then by offsets."""
    if method == "files":
        return PurePosixPath(name).parts, 0, 0
    path, start, end = split_shard(name)
    return PurePosixPath(path).parts, start, end


def split_shard(name: str) -> tuple[str, int, int]:
    """``path:start:end`` into its parts; a name that does not parse is refused."""
    parts = name.rsplit(":", 2)
    if len(parts) != 3 or not parts[1].isdigit() or not parts[2].isdigit() or int(parts[2]) <= int(parts[1]):
        raise ValueError(f"{name!r} is not a shard name path:start:end")
    return parts[0], int(parts[1]), int(parts[2])


def relative_ignore(path: str | os.PathLike[str], model: Path) -> str:
    """A user's ignore path as a POSIX path relative to the model folder; one outside it is refused."""
    p = Path(path)
    if p.is_absolute():
        try:
            p = p.resolve().relative_to(model.resolve())
        except ValueError:
            raise InputError(f"ignore path {path} is outside the model folder {model}") from None
    posix = p.as_posix()
    if escapes(posix) or posix in ("", "."):
        raise InputError(f"ignore path {str(path)!r} must name a file or folder inside the model folder")
    return posix


def _ignored(parts: tuple[str, ...], ignore: list[tuple[str, ...]]) -> bool:
    return any(parts[: len(i)] == i for i in ignore)


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _check_entry(p: Path, top: Path, allow_symlinks: bool) -> None:
    """A link must be allowed and stay in the folder pointing at a file; nothing but regular files is hashed."""
    if p.is_symlink():
        if not allow_symlinks:
            raise InputError(f"{p} is a symlink; model signing refuses symlinks unless allow_symlinks is set")
        target = p.resolve()
        if not _inside(target, top):
            raise InputError(f"{p} is a symlink to {target}, outside the model folder {top}")
        if not target.is_file():
            raise InputError(f"{p} is a symlink to a folder or to nothing; only links to files are followed")
    elif not stat.S_ISREG(p.stat().st_mode):
        raise InputError(f"{p} is not a regular file (a pipe, socket or device cannot be signed)")


def list_files(model: Path, ignore: Iterable[str] = (), allow_symlinks: bool = False) -> list[tuple[str, Path]]:
    """The files of a model as (resource name, path), ignored paths pruned; unsafe entries are refused."""
    if not model.exists() and not model.is_symlink():
        raise MissingFileError(f"{model} does not exist")
    if model.is_symlink() and not allow_symlinks:
        raise InputError(f"{model} is a symlink; give the real path of the model")
    if not model.is_dir():
        _check_entry(model, model.resolve(), allow_symlinks)
        return [(".", model)]
    top = model.resolve()
    skip = [PurePosixPath(i).parts for i in ignore if not escapes(i)]
    found: list[tuple[str, Path]] = []
    for dirpath, dirnames, filenames in os.walk(model, onerror=_raise):
        base = Path(dirpath)
        rel_base = base.relative_to(model).parts
        for name in list(dirnames):
            p = base / name
            if _ignored((*rel_base, name), skip):
                dirnames.remove(name)
            elif p.is_symlink():  # os.walk lists links to folders as folders and does not follow them
                dirnames.remove(name)
                _check_entry(p, top, allow_symlinks)
        for name in filenames:
            parts = (*rel_base, name)
            if _ignored(parts, skip):
                continue
            p = base / name
            _check_entry(p, top, allow_symlinks)
            found.append(("/".join(parts), p))
    return sorted(found)


def _raise(exc: OSError) -> None:
    raise exc


def digest_range(path: Path, hash_type: str, start: int = 0, end: int | None = None) -> str:
    """Hex digest of ``path[start:end]`` (the whole file by default), read in 1 MiB chunks into one buffer."""
    h = HASH_TYPES[hash_type]()
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    with path.open("rb", buffering=0) as f:
        left = None if end is None else end - start
        if hasattr(os, "posix_fadvise"):  # a cold multi-GB read goes at disk speed only with full readahead
            os.posix_fadvise(f.fileno(), start, left or 0, os.POSIX_FADV_SEQUENTIAL)
        if start:
            f.seek(start)
        while left is None or left > 0:
            n = f.readinto(view if left is None or left >= CHUNK else view[:left])
            if not n:
                break
            h.update(view[:n])
            if left is not None:
                left -= n
    return h.hexdigest()


def _pieces(files: list[tuple[str, Path]], ser: Serialization) -> list[tuple[str, Path, int, int | None]]:
    """One piece per file, or one per shard of each file."""
    if ser.method == "files":
        return [(name, p, 0, None) for name, p in files]
    size = ser.shard_size or DEFAULT_SHARD_SIZE
    pieces: list[tuple[str, Path, int, int | None]] = []
    for name, p in files:
        length = p.stat().st_size
        pieces += [(f"{name}:{s}:{min(s + size, length)}", p, s, min(s + size, length)) for s in range(0, length, size)]
    return pieces


def model_name(model: Path) -> str:
    """The subject name model-signing gives a model: its final path component."""
    name = model.name
    return name if name and name != ".." else os.path.basename(model.resolve())


def build_manifest(
    model: str | os.PathLike[str],
    serialization: Serialization,
    extra_ignore: Iterable[str] = (),
    workers: int | None = None,
) -> Manifest:
    """Hash every file (or shard) of the model in parallel; ``extra_ignore`` is skipped but not recorded."""
    path = Path(model)
    if serialization.hash_type not in HASH_TYPES:
        raise InputError(f"hash type {serialization.hash_type!r} is not one of {', '.join(HASH_TYPES)}")
    if workers is not None and workers < 1:
        raise InputError(f"workers must be at least 1, got {workers}")
    files = list_files(path, [*serialization.ignore_paths, *extra_ignore], serialization.allow_symlinks)
    pieces = _pieces(files, serialization)
    with ThreadPoolExecutor(max_workers=workers or min(32, (os.cpu_count() or 1) + 4)) as pool:
        hexes = list(
            pool.map(lambda piece: digest_range(piece[1], serialization.hash_type, piece[2], piece[3]), pieces)
        )
    return Manifest(model_name(path), serialization, {piece[0]: h for piece, h in zip(pieces, hexes, strict=True)})
