"""The pinned packages of a requirements or lock file, as the tools that write them write them.

Read: requirements files (``pip freeze``, ``pip-compile``, ``uv pip compile``, ``uv export``: hashes, extras,
markers, ``-r`` includes, index options), PEP 751 ``pylock*.toml``, ``uv.lock``, ``poetry.lock``,
``Pipfile.lock`` and a conda ``environment.yml`` (its ``pip:`` list). A lock describes every platform, so every
pin is audited whatever its environment marker says about this interpreter: the one that installs on the target
is among them. What has no version to audit (an editable or URL requirement, a local project, a conda package)
comes back with ``skip`` saying why, so a report can list it instead of refusing the whole file.
A ``pyproject.toml`` declares ranges, not pins, and is refused with the command that locks it.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from modelshield.core.errors import FormatError, InputError, MissingFileError

_EDITABLE = re.compile(r"^(?:--editable|-e)[\s=]*")
_COMMENT = re.compile(r"(^|\s+)#.*$")  # pip's rule: a '#' at the start or after whitespace (not a URL's #egg=)


@dataclass(frozen=True)
class Package:
    """A distribution to audit: name, exact version, where it was found (a file, for reports), and why it
    cannot be audited when it cannot (then ``version`` is ``""``)."""

    name: str
    version: str
    location: str = ""
    skip: str = ""

    @property
    def key(self) -> str:
        return canonicalize_name(self.name)


def _requirement_lines(path: Path, seen: set[Path]) -> Iterator[tuple[str, str]]:
    """(line, where) of a requirements file and the files it includes with ``-r``, each read once."""
    if path.resolve() in seen:
        return
    seen.add(path.resolve())
    if not path.is_file():
        raise MissingFileError(f"requirements file {path} does not exist")
    yield from _lines(path.read_text(encoding="utf-8"), path, seen)


def _lines(text: str, path: Path, seen: set[Path]) -> Iterator[tuple[str, str]]:
    """(line, where) after joining continuations and dropping comments; ``-r`` includes are followed from
    the folder of ``path``."""
    for number, raw in enumerate(text.replace("\\\n", " ").splitlines(), 1):
        line = _COMMENT.sub("", raw).strip()
        if line.startswith(("-r ", "--requirement ", "-r", "--requirement=")):
            include = line.split("=", 1)[1] if line.startswith("--requirement=") else line.split(None, 1)[-1]
            yield from _requirement_lines(path.parent / include.removeprefix("-r").strip(), seen)
        elif line:
            yield line, f"{path}:{number}"


def _pinned(line: str, where: str) -> Package | None:
    """A ``name==version`` requirement; ``None`` for option lines (``--hash``, ``--index-url``, ``-c``...)."""
    file = where.rsplit(":", 1)[0]
    if line.startswith(("-e", "--editable")):
        target = _EDITABLE.sub("", line)
        name = target.split("#egg=", 1)[1].split("&")[0] if "#egg=" in target else target
        return Package(name, "", file, "editable install: no released version to audit")
    if line.startswith("-"):
        return None
    spec = line.split(" --", 1)[0].strip()
    try:
        req = Requirement(spec)
    except InvalidRequirement as exc:
        raise InputError(f"{where}: {spec!r} is not a requirement ({str(exc).splitlines()[0]})") from None
    if req.url:
        return Package(req.name, "", file, f"installed from {req.url}: no released version to audit")
    pins = [s for s in req.specifier if s.operator in ("==", "===") and "*" not in s.version]
    if len(pins) != 1 or len(req.specifier) != 1:
        raise InputError(
            f"{where}: {spec!r} is not pinned to one version",
            hint="audit a lock file: pin every requirement as name==version (pip freeze, uv pip compile)",
        )
    return Package(req.name, pins[0].version, file)


def _toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise FormatError(f"{path} is not valid TOML ({exc})") from None


def _toml_packages(path: Path, key: str) -> Iterator[Package]:
    """``[[packages]]`` (PEP 751) or ``[[package]]`` (uv.lock, poetry.lock): name, version, and a source that
    says when it is a local project rather than a release from an index."""
    for i, entry in enumerate(_toml(path).get(key) or []):
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise FormatError(f"{path}: {key}[{i}] has no name")
        raw = entry.get("source")
        source: dict[str, Any] = raw if isinstance(raw, dict) else {}
        # uv.lock: source = {virtual = "."}; poetry.lock: [package.source] type = "directory"; PEP 751: a
        # [packages.directory] or [packages.vcs] table of its own
        kinds: list[str] = [k for k in ("virtual", "editable", "directory", "path") if k in source]
        kinds += [str(source["type"])] if source.get("type") in ("directory", "file") else []
        kinds += [k for k in ("directory", "vcs") if k in entry]
        local = kinds[0] if kinds else None
        if local:
            yield Package(entry["name"], "", str(path), f"local project ({local}), not from an index")
        elif isinstance(entry.get("version"), str):
            yield Package(entry["name"], entry["version"], str(path))
        else:  # PEP 751 leaves the version out for an archive URL or a source tree
            yield Package(entry["name"], "", str(path), "no version in the lock: built from a URL or a source tree")


def _pipfile_packages(path: Path) -> Iterator[Package]:
    """Pipenv's ``Pipfile.lock``: ``default`` and ``develop``, each name to ``{"version": "==x", ...}``."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise FormatError(f"{path} is not valid JSON ({exc})") from None
    for section in ("default", "develop"):
        for name, entry in (doc.get(section) or {}).items():
            version = entry.get("version") if isinstance(entry, dict) else None
            if isinstance(version, str) and version.startswith("=="):
                yield Package(name, version.lstrip("="), str(path))
            else:
                where = next((k for k in ("git", "path", "file") if isinstance(entry, dict) and k in entry), "")
                yield Package(name, "", str(path), f"installed from its {where or 'source'}: no version to audit")


def _conda_packages(path: Path) -> Iterator[Package]:
    """A conda ``environment.yml``: the ``pip:`` list is PyPI's; conda's own packages are another ecosystem."""
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise FormatError(f"{path} is not valid YAML ({str(exc).splitlines()[0]})") from None
    for dep in (doc or {}).get("dependencies") or []:
        if isinstance(dep, dict):  # conda hands these lines to pip: includes and options as in a file
            pip_lines = "\n".join(str(line) for line in dep.get("pip") or [])
            for line, where in _lines(pip_lines, path, {path.resolve()}):
                if (pkg := _pinned(line, where)) is not None:
                    yield pkg
        elif isinstance(dep, str):
            name = dep.split("::")[-1].split("=")[0].split("<")[0].split(">")[0].strip()
            yield Package(name, "", str(path), "conda package: PyPI advisories do not cover conda's builds")


def _requirements(path: Path) -> Iterator[Package]:
    for line, where in _requirement_lines(path, set()):
        if (pkg := _pinned(line, where)) is not None:
            yield pkg


def _unique(packages: Iterable[Package]) -> list[Package]:
    """One entry per name and version (an include may repeat a pin); two versions of one name both stay."""
    found: dict[tuple[str, str, str], Package] = {}
    for pkg in packages:
        found.setdefault((pkg.key, pkg.version, pkg.skip and pkg.name), pkg)
    return list(found.values())


def requirements_packages(path: Path | str) -> list[Package]:
    """Every pinned package of a requirements or lock file; its format is told by its name."""
    p = Path(path)
    if not p.is_file():
        raise MissingFileError(f"requirements file {p} does not exist")
    name = p.name.lower()
    if name == "pyproject.toml":
        raise InputError(
            f"{p} declares version ranges, not pins: audit its lock file",
            hint="uv pip compile pyproject.toml -o requirements.txt, uv lock or poetry lock writes one",
        )
    if name.startswith("pylock.") and name.endswith(".toml"):
        found = _unique(_toml_packages(p, "packages"))
    elif name in ("uv.lock", "poetry.lock"):
        found = _unique(_toml_packages(p, "package"))
    elif name == "pipfile.lock":
        found = _unique(_pipfile_packages(p))
    elif name.endswith((".yml", ".yaml")):
        found = _unique(_conda_packages(p))
    else:
        found = _unique(_requirements(p))
    if not any(not pkg.skip for pkg in found):
        raise InputError(f"{p} pins no packages")
    return found
