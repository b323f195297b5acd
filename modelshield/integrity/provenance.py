"""Provenance lock files: pin third-party weights and datasets by digest, then refuse them if they change.

``modelshield.lock.json`` sits in the project folder; every path in it is relative to that folder::

    {"version": 1, "artifacts": {"llama-3-8b": {
        "kind": "model", "path": "models/llama-3-8b", "digest": "sha256:<hex>",
        "files": {"config.json": "sha256:<hex>", ...}, "size": 16060522926,
        "source": "https://huggingface.co/...", "licence": "Llama-3", "added": "2026-05-01"}}}

A file's digest is its SHA-256. A folder's digest is the SHA-256 of the sorted lines
``relpath\\0<sha256 hex of the file>\\n`` (relpath with ``/``), so editing, adding, removing or renaming any
file changes it; ``files`` keeps the per-file digests so a mismatch can name the file that differs.

The lock file is trusted input only as far as its digests go: paths in it are refused if absolute or if they
climb with ``..``, and nothing is read through a symlink that leaves the project (or, inside a folder
artifact, the artifact's folder), so an edited lock entry cannot make ``verify`` read elsewhere.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from modelshield.core.errors import FormatError, InputError, MissingFileError
from modelshield.core.files import atomic_output, hash_file
from modelshield.integrity.archives import escapes

LOCK_NAME = "modelshield.lock.json"
LOCK_VERSION = 1
KINDS = ("model", "dataset")
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:/@+-]{0,199}")
_LICENCE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:+()\- ]{0,99}")
_REQUIRED = {"kind": str, "path": str, "digest": str, "size": int, "source": str, "licence": str, "added": str}
_FIELDS = set(_REQUIRED) | {"files"}

Status = Literal["ok", "mismatch", "missing"]


@dataclass(frozen=True)
class TreeDigest:
    """What a file or folder hashes to; ``files`` is ``None`` for a single file."""

    digest: str
    size: int
    files: dict[str, str] | None = None


@dataclass(frozen=True)
class Artifact:
    """One lock entry, as validated when the lock file was read."""

    kind: str
    path: str
    digest: str
    size: int
    source: str
    licence: str
    added: str
    files: dict[str, str] | None = None

    def to_json(self) -> dict[str, Any]:
        """The entry as stored: ``files`` only for folders."""
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass
class ArtifactResult:
    """The verdict on one artifact, with the files that differ so a person knows where to look."""

    name: str
    kind: str
    path: str
    status: Status
    problems: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)


@dataclass
class VerifyReport:
    """Every checked artifact; ``ok`` only when all of them match the lock."""

    lock: Path
    results: list[ArtifactResult]

    @property
    def ok(self) -> bool:
        return all(r.status == "ok" for r in self.results)

    def to_dict(self) -> dict[str, Any]:
        return {"lock": str(self.lock), "ok": self.ok, "artifacts": [asdict(r) for r in self.results]}


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _list_files(folder: Path) -> list[tuple[str, Path]]:
    """Regular files below ``folder`` as (relpath, path); symlinks must stay inside it and point at files."""
    top = folder.resolve()
    found: list[tuple[str, Path]] = []
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in dirnames + filenames:
            p = Path(dirpath, name)
            rel = p.relative_to(folder).as_posix()
            if p.is_symlink():
                target = p.resolve()
                if not _inside(target, top):
                    raise InputError(
                        f"{p} is a symlink to {target}, outside the artifact folder {folder}",
                        hint="copy the real files into the folder and lock that",
                    )
                if not target.is_file():
                    raise InputError(f"{p} is a symlink to a folder or to nothing; only file symlinks are followed")
            elif name in dirnames:
                continue
            if not stat.S_ISREG(p.stat().st_mode):
                raise InputError(f"{p} is not a regular file (a pipe, socket or device cannot be locked)")
            found.append((rel, p))
    return sorted(found)


def hash_tree(path: Path | str, workers: int | None = None) -> TreeDigest:
    """Hash a file, or every file in a folder on a thread pool (hashlib releases the GIL on large buffers)."""
    p = Path(path)
    if not p.exists():
        raise MissingFileError(f"{p} does not exist")
    if not p.is_dir():
        if not stat.S_ISREG(p.stat().st_mode):
            raise InputError(f"{p} is not a regular file")
        hexdigest, size = hash_file(p)
        return TreeDigest(f"sha256:{hexdigest}", size)
    if workers is not None and workers < 1:
        raise InputError(f"workers must be at least 1, got {workers}")
    entries = _list_files(p)
    with ThreadPoolExecutor(max_workers=workers or min(32, os.cpu_count() or 1)) as pool:
        hashed = list(pool.map(hash_file, (q for _, q in entries)))
    files = {rel: f"sha256:{hexdigest}" for (rel, _), (hexdigest, _) in zip(entries, hashed, strict=True)}
    return TreeDigest(folder_digest(files), sum(size for _, size in hashed), files)


def folder_digest(files: dict[str, str]) -> str:
    """The folder digest of a ``relpath -> "sha256:<hex>"`` map (see the module docstring)."""
    h = hashlib.sha256()
    for rel in sorted(files):
        h.update(os.fsencode(rel) + b"\0" + files[rel].removeprefix("sha256:").encode("ascii") + b"\n")
    return f"sha256:{h.hexdigest()}"


def _check_relpath(rel: str, where: str) -> str:
    """Lock paths are plain relative paths, so a lock entry can never point outside the project."""
    if not rel or escapes(rel) or PurePosixPath(rel.replace("\\", "/")).parts in ((), (".",)):
        raise FormatError(
            f"{where}: path {rel!r} must be a relative path to a file or folder inside the lock file's folder"
        )
    return rel


def _locate(root: Path, rel: str) -> Path:
    """``root/rel``, refused if a symlink on the way takes it outside ``root``."""
    path = root / rel
    real = path.resolve()
    if not _inside(real, root.resolve()):
        raise InputError(
            f"{path} resolves to {real}, outside the project folder {root}",
            hint="keep locked artifacts inside the folder that holds the lock file",
        )
    return path


def _parse_entry(name: str, raw: Any, where: str) -> Artifact:
    """One lock entry, with every field checked: a hand-edited or tampered entry fails here, loudly."""
    where = f"{where}, artifact {name!r}"
    if not _NAME.fullmatch(name):
        raise FormatError(f"{where}: not a valid artifact name")
    if not isinstance(raw, dict):
        raise FormatError(f"{where}: expected an object")
    if unknown := sorted(set(raw) - _FIELDS):
        raise FormatError(f"{where}: unknown fields {', '.join(unknown)}")
    for key, typ in _REQUIRED.items():
        if not isinstance(raw.get(key), typ) or isinstance(raw.get(key), bool):
            raise FormatError(f"{where}: field {key!r} is missing or not a {typ.__name__}")
    if raw["kind"] not in KINDS:
        raise FormatError(f"{where}: kind {raw['kind']!r} is not one of {', '.join(KINDS)}")
    files = raw.get("files")
    if files is not None and not (
        isinstance(files, dict) and all(isinstance(v, str) and _DIGEST.fullmatch(v) for v in files.values())
    ):
        raise FormatError(f"{where}: 'files' must map relative paths to sha256:<hex> digests")
    for rel in files or ():
        _check_relpath(rel, where)
    if not _DIGEST.fullmatch(raw["digest"]):
        raise FormatError(f"{where}: digest {raw['digest']!r} is not sha256:<64 hex digits>")
    _check_relpath(raw["path"], where)
    return Artifact(**raw)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A repeated key would let a reviewer read one digest while the parser keeps another."""
    if dupes := sorted(k for k, n in Counter(k for k, _ in pairs).items() if n > 1):
        raise ValueError(f"repeated keys {', '.join(map(repr, dupes))}")
    return dict(pairs)


def load_lock(lock_path: Path | str) -> dict[str, Artifact]:
    """Read and validate a lock file: a file that fails to parse or has unknown fields is refused whole."""
    p = Path(lock_path)
    if not p.is_file():
        raise MissingFileError(
            f"lock file {p} does not exist",
            hint="create it: modelshield provenance add NAME PATH --kind model --source URL --licence ID",
        )
    try:
        doc = json.loads(p.read_text(encoding="utf-8"), object_pairs_hook=_no_duplicates)
    except (ValueError, UnicodeDecodeError) as exc:
        raise FormatError(f"lock file {p} is not valid JSON ({exc})") from None
    if not isinstance(doc, dict) or set(doc) != {"version", "artifacts"} or not isinstance(doc["artifacts"], dict):
        raise FormatError(f"lock file {p} is not a modelshield lock (an object with exactly 'version' and 'artifacts')")
    if doc["version"] != LOCK_VERSION:
        raise FormatError(
            f"lock file {p}: unsupported version {doc['version']!r} (this modelshield reads {LOCK_VERSION})"
        )
    return {name: _parse_entry(name, raw, f"lock file {p}") for name, raw in doc["artifacts"].items()}


def save_lock(lock_path: Path | str, artifacts: dict[str, Artifact]) -> None:
    """Write the lock atomically with sorted keys, so it diffs cleanly in review; 0644 because it is committed."""
    doc = {"version": LOCK_VERSION, "artifacts": {n: a.to_json() for n, a in artifacts.items()}}
    with atomic_output(Path(lock_path), mode=0o644) as f:
        f.write((json.dumps(doc, indent=2, sort_keys=True) + "\n").encode("utf-8"))


def add_artifact(
    lock_path: Path | str,
    name: str,
    path: Path | str,
    *,
    kind: str,
    source: str,
    licence: str,
    replace: bool = False,
    workers: int | None = None,
) -> Artifact:
    """Hash ``path`` and record it under ``name``; the lock file is created if it does not exist yet."""
    lock = Path(lock_path)
    root = lock.absolute().parent
    if not _NAME.fullmatch(name):
        raise InputError(f"artifact name {name!r} is not valid (letters, digits and _.:/@+-, up to 200)")
    if kind not in KINDS:
        raise InputError(f"kind {kind!r} is not one of {', '.join(KINDS)}")
    if not _LICENCE.fullmatch(licence):
        raise InputError(f"licence {licence!r} is not an SPDX identifier or expression (e.g. Apache-2.0, MIT)")
    if not source.strip():
        raise InputError("source is empty; give the URL or a description of where the artifact came from")
    artifacts = load_lock(lock) if lock.exists() else {}
    if name in artifacts and not replace:
        raise InputError(f"{lock} already has an artifact {name!r}", hint="pass --replace to re-pin it")
    rel = os.path.relpath(Path(path).absolute(), root)
    if rel.startswith(".."):
        raise InputError(f"{path} is outside {root}, the folder that holds the lock file")
    rel = _check_relpath(Path(rel).as_posix(), f"artifact {name!r}")
    tree = hash_tree(_locate(root, rel), workers)
    today = datetime.now(UTC).date().isoformat()
    artifacts[name] = Artifact(kind, rel, tree.digest, tree.size, source.strip(), licence, today, tree.files)
    save_lock(lock, dict(sorted(artifacts.items())))
    return artifacts[name]


def _compare(name: str, entry: Artifact, actual: TreeDigest) -> ArtifactResult:
    """Name every file that differs, and say so when the files match but the lock entry itself was edited."""
    result = ArtifactResult(name, entry.kind, entry.path, "ok")
    if (entry.files is None) != (actual.files is None):
        want, got = ("a file", "a folder") if entry.files is None else ("a folder", "a file")
        result.problems.append(f"expected {want}, found {got}")
    elif entry.files is None:
        if actual.digest != entry.digest:
            result.changed.append(entry.path)
    else:
        assert actual.files is not None
        result.changed = sorted(
            r for r in entry.files.keys() & actual.files.keys() if entry.files[r] != actual.files[r]
        )
        result.missing = sorted(entry.files.keys() - actual.files.keys())
        result.extra = sorted(actual.files.keys() - entry.files.keys())
    differs = result.problems or result.changed or result.missing or result.extra
    if actual.digest != entry.digest and not differs:
        result.problems.append("the files match their listed digests but not the lock entry's digest (entry edited)")
    elif actual.digest == entry.digest and differs:
        result.problems.append("the lock entry's file list disagrees with its digest (entry edited)")
    if actual.size != entry.size and not differs:
        result.problems.append(f"size is {actual.size} bytes, the lock says {entry.size} (entry edited)")
    if result.problems or differs:
        result.status = "mismatch"
    return result


def verify(lock_path: Path | str, names: Iterable[str] | None = None, workers: int | None = None) -> VerifyReport:
    """Re-hash the locked artifacts (all, or those named) and compare each with its lock entry."""
    lock = Path(lock_path)
    artifacts = load_lock(lock)
    wanted = list(dict.fromkeys(names or ())) or sorted(artifacts)
    if unknown := [n for n in wanted if n not in artifacts]:
        raise InputError(
            f"{lock} has no artifact {', '.join(map(repr, unknown))} (it has: {', '.join(artifacts) or 'none'})"
        )
    root = lock.absolute().parent
    results = []
    for name in wanted:
        entry = artifacts[name]
        path = _locate(root, entry.path)
        if not path.exists():
            results.append(ArtifactResult(name, entry.kind, entry.path, "missing", [f"{entry.path} does not exist"]))
        else:
            results.append(_compare(name, entry, hash_tree(path, workers)))
    return VerifyReport(lock, results)
