"""Approval list: which libraries (name + version specifier) and which models and datasets (by digest) a person
approved, when and why. ``check`` fails on anything new or changed, so CI refuses an unreviewed dependency or a
swapped weight file; ``approve`` records a decision without losing the others.

``modelshield-approvals.toml``::

    version = 1

    [[library]]
    name = "torch"
    version = "==2.13.0"          # a PEP 440 specifier; "" approves every version; "==2.2.6 || ==2.3.1" either
    approved_by = "alice@example.com"
    date = "2026-05-01"
    reason = "training stack"

    [[model]]                     # [[dataset]] has the same fields
    name = "resnet18.safetensors"
    sha256 = "sha256:9f86d0..."   # what the provenance lock and the SBOM hash: a file's SHA-256, a folder's digest
    approved_by = "bob"
    date = "2026-05-02"
    reason = "vendor model, scanned clean"

The file is rewritten whole, atomically and under a lock, with entries sorted, so reviews see clean diffs;
comments in it are not kept.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from modelshield.core.errors import FormatError, InputError, MissingFileError
from modelshield.core.files import atomic_output
from modelshield.integrity.provenance import hash_tree
from modelshield.supplychain.vulns import Package

APPROVALS_NAME = "modelshield-approvals.toml"
VERSION = 1
ARTIFACT_KINDS = ("model", "dataset")
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_LIBRARY_FIELDS = {"name", "version", "approved_by", "date", "reason"}
_ARTIFACT_FIELDS = {"name", "sha256", "approved_by", "date", "reason"}

Status = Literal["approved", "new", "changed"]


@dataclass(frozen=True)
class LibraryApproval:
    name: str
    version: str
    approved_by: str
    date: str
    reason: str

    def allows(self, version: str) -> bool:
        """PEP 440 match of any of the ``||`` alternatives, pre-releases included (an approver who pinned one meant
        it). A universal lock pins one library at several versions, one per platform or Python."""
        try:
            found = Version(version)
        except InvalidVersion:
            return self.version == "" or any(a in (f"=={version}", f"==={version}") for a in alternatives(self.version))
        return any(SpecifierSet(a).contains(found, prereleases=True) for a in alternatives(self.version))


def alternatives(spec: str) -> list[str]:
    """The PEP 440 specifiers an approval's version joins with ``||`` (any of them approves)."""
    return [part.strip() for part in spec.split("||")]


def valid_spec(spec: str) -> bool:
    """Whether every ``||`` alternative of an approval's version is a PEP 440 specifier."""
    try:
        for alternative in alternatives(spec):
            SpecifierSet(alternative)
    except InvalidSpecifier:
        return False
    return True


def either(versions: Sequence[str]) -> str:
    """The approval of exactly these versions: ``==a || ==b``, sorted, without repeats."""
    return " || ".join(f"=={v}" for v in sorted(set(versions)))


@dataclass(frozen=True)
class ArtifactApproval:
    name: str
    sha256: str
    approved_by: str
    date: str
    reason: str


@dataclass
class Approvals:
    """The whole file: libraries by normalised name, models and datasets by name."""

    libraries: dict[str, LibraryApproval] = field(default_factory=dict)
    models: dict[str, ArtifactApproval] = field(default_factory=dict)
    datasets: dict[str, ArtifactApproval] = field(default_factory=dict)

    def artifacts(self, kind: str) -> dict[str, ArtifactApproval]:
        return self.models if kind == "model" else self.datasets


def _text(raw: dict[str, Any], key: str, where: str, allow_empty: bool = False) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or (not allow_empty and not value.strip()):
        raise FormatError(f"{where}: '{key}' is missing or not a non-empty string")
    return value


def _entries(doc: dict[str, Any], key: str, fields: set[str], where: str) -> Iterator[tuple[dict[str, Any], str]]:
    entries = doc.get(key, [])
    if not isinstance(entries, list):
        raise FormatError(f"{where}: '{key}' must be an array of tables ([[{key}]])")
    for i, raw in enumerate(entries):
        here = f"{where}, {key} #{i + 1}"
        if not isinstance(raw, dict):
            raise FormatError(f"{here}: not a table")
        if unknown := sorted(set(raw) - fields):
            raise FormatError(f"{here}: unknown fields {', '.join(unknown)}")
        yield raw, here


def parse_approvals(text: str, where: str) -> Approvals:
    """Validate every entry; a duplicate, a bad specifier or a bad digest refuses the whole file."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise FormatError(f"{where} is not valid TOML ({exc})") from None
    if doc.get("version") != VERSION:
        raise FormatError(f"{where}: 'version' must be {VERSION}")
    if unknown := sorted(set(doc) - {"version", "library", "model", "dataset"}):
        raise FormatError(f"{where}: unknown keys {', '.join(unknown)}")
    approvals = Approvals()
    for raw, here in _entries(doc, "library", _LIBRARY_FIELDS, where):
        name, spec = _text(raw, "name", here), _text(raw, "version", here, allow_empty=True)
        if not valid_spec(spec):
            raise FormatError(f"{here}: version {spec!r} is not a PEP 440 specifier (e.g. ==2.13.0)")
        key = canonicalize_name(name)
        if key in approvals.libraries:
            raise FormatError(f"{here}: library {name!r} is listed twice")
        approvals.libraries[key] = LibraryApproval(
            name, spec, *(_text(raw, k, here) for k in ("approved_by", "date", "reason"))
        )
    for kind in ARTIFACT_KINDS:
        for raw, here in _entries(doc, kind, _ARTIFACT_FIELDS, where):
            name, digest = _text(raw, "name", here), _text(raw, "sha256", here)
            digest = digest if digest.startswith("sha256:") else f"sha256:{digest}"
            if not _DIGEST.fullmatch(digest):
                raise FormatError(f"{here}: sha256 {raw['sha256']!r} is not 64 lowercase hex digits")
            if name in approvals.artifacts(kind):
                raise FormatError(f"{here}: {kind} {name!r} is listed twice")
            approvals.artifacts(kind)[name] = ArtifactApproval(
                name, digest, *(_text(raw, k, here) for k in ("approved_by", "date", "reason"))
            )
    return approvals


def load_approvals(path: Path | str) -> Approvals:
    p = Path(path)
    if not p.is_file():
        raise MissingFileError(
            f"approval list {p} does not exist", hint="create it: modelshield deps approve NAME --by WHO --reason WHY"
        )
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise FormatError(f"approval list {p} is not UTF-8 text") from None
    return parse_approvals(text, f"approval list {p}")


def _toml_string(value: str) -> str:
    """A TOML basic string: quotes, backslashes and control characters escaped, everything else kept."""
    out = []
    for ch in value:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append({"\n": "\\n", "\t": "\\t", "\r": "\\r"}.get(ch, f"\\u{ord(ch):04x}"))
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def dump_approvals(approvals: Approvals) -> str:
    """The file's canonical text: entries sorted by name, one table each."""
    blocks = [f"version = {VERSION}\n"]
    tables: list[tuple[str, list[Any]]] = [("library", [approvals.libraries[k] for k in sorted(approvals.libraries)])]
    tables += [
        (kind, [approvals.artifacts(kind)[k] for k in sorted(approvals.artifacts(kind))]) for kind in ARTIFACT_KINDS
    ]
    for kind, entries in tables:
        for entry in entries:
            lines = "".join(f"{k} = {_toml_string(v)}\n" for k, v in asdict(entry).items())
            blocks.append(f"[[{kind}]]\n{lines}")
    return "\n".join(blocks)


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Serialise writers on a sidecar lock file, so two approvals at once cannot drop each other's entry."""
    try:
        import fcntl
    except ImportError:  # Windows: the atomic replace still keeps the file whole
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path.with_name(f".{path.name}.lock"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _check_who(approved_by: str, reason: str) -> None:
    if not approved_by.strip():
        raise InputError("say who approves: --by NAME")
    if not reason.strip():
        raise InputError("say why: --reason TEXT")


def _today() -> str:
    return datetime.now(UTC).date().isoformat()


def approve(
    path: Path | str,
    *,
    approved_by: str,
    reason: str,
    libraries: Sequence[tuple[str, str]] = (),
    artifacts: Sequence[tuple[str, str, Path]] = (),
) -> Approvals:
    """Record libraries as (name, specifier) and artifacts as (kind, name, path, hashed now); other entries stay.

    An entry for the same library or artifact name is replaced: the new decision supersedes the old one.
    """
    _check_who(approved_by, reason)
    for name, spec in libraries:
        if not valid_spec(spec):
            raise InputError(
                f"version {spec!r} for {name} is not a PEP 440 specifier (e.g. ==2.13.0, >=2,<3, ==1.0 || ==1.2)"
            )
    for kind, _, _ in artifacts:
        if kind not in ARTIFACT_KINDS:
            raise InputError(f"kind {kind!r} is not one of {', '.join(ARTIFACT_KINDS)}")
    digests = [hash_tree(p).digest for _, _, p in artifacts]  # before taking the lock: hashing can be slow
    p = Path(path)
    with _locked(p):
        current = load_approvals(p) if p.exists() else Approvals()
        who, why, today = approved_by.strip(), " ".join(reason.split()), _today()
        for name, spec in libraries:
            current.libraries[canonicalize_name(name)] = LibraryApproval(name, spec, who, today, why)
        for (kind, name, _), digest in zip(artifacts, digests, strict=True):
            current.artifacts(kind)[name] = ArtifactApproval(name, digest, who, today, why)
        text = dump_approvals(current)
        parse_approvals(text, "the approval list about to be written")  # never write what we could not read back
        with atomic_output(p, mode=0o644) as f:
            f.write(text.encode("utf-8"))
    return current


@dataclass(frozen=True)
class CheckResult:
    """One library or artifact: approved, new (no entry) or changed (an entry, for another version or digest)."""

    kind: str
    name: str
    found: str
    status: Status
    approved: str = ""
    approved_by: str = ""


@dataclass
class CheckReport:
    results: list[CheckResult]
    unused: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(r.status == "approved" for r in self.results)

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "results": [asdict(r) for r in self.results], "unused": self.unused}


def check_library(approvals: Approvals, pkg: Package) -> CheckResult:
    entry = approvals.libraries.get(pkg.key)
    if entry is None:
        return CheckResult("library", pkg.name, pkg.version, "new")
    status: Status = "approved" if entry.allows(pkg.version) else "changed"
    return CheckResult("library", pkg.name, pkg.version, status, entry.version or "any version", entry.approved_by)


def check_artifact(approvals: Approvals, kind: str, name: str, path: Path) -> CheckResult:
    """Approved when an entry of this kind has this digest (under any name: a copy is still the approved bytes)."""
    digest = hash_tree(path).digest
    entries = approvals.artifacts(kind)
    for entry in entries.values():
        if entry.sha256 == digest:
            return CheckResult(kind, name, digest, "approved", entry.sha256, entry.approved_by)
    if name in entries:
        return CheckResult(kind, name, digest, "changed", entries[name].sha256, entries[name].approved_by)
    return CheckResult(kind, name, digest, "new")


def check(
    approvals: Approvals,
    packages: Sequence[Package],
    artifacts: Sequence[tuple[str, str, Path]] = (),
) -> CheckReport:
    """Compare packages and (kind, name, path) artifacts with the approvals; list approvals nothing used.
    A package with no version (an editable install, a local project) has nothing to approve and is left out."""
    results = [check_library(approvals, pkg) for pkg in packages if not pkg.skip]
    results += [check_artifact(approvals, kind, name, path) for kind, name, path in artifacts]
    present = {Package(r.name, r.found).key for r in results if r.kind == "library"}
    unused = [approvals.libraries[k].name for k in sorted(approvals.libraries.keys() - present)]
    return CheckReport(results, unused)


def unapproved(approvals: Approvals, packages: Sequence[Package]) -> list[Package]:
    """Packages ``check`` would fail: what ``approve --all`` records in one go."""
    return [pkg for pkg in packages if not pkg.skip and check_library(approvals, pkg).status != "approved"]
