"""OSV advisories for PyPI, read offline, and the OSV schema's rules for which versions they affect.

Schema: https://ossf.github.io/osv-schema/. An advisory affects a package version when the version is in its
``versions`` list, or falls inside one of its ``ranges``: events sorted by version, ``introduced`` opens a
vulnerable interval, ``fixed`` closes it (exclusive) and ``last_affected`` closes it (inclusive); ``limit`` events
bound what the range may describe (the version must be below one). ``ECOSYSTEM`` ranges compare PyPI versions by
PEP 440, ``SEMVER`` ranges by SemVer 2.0 precedence; ``GIT`` ranges name commits and cannot be placed on a
version, so only the advisory's ``versions`` list speaks for them. Withdrawn advisories are skipped.

Advisories come as one JSON record, a JSON list of records, a folder of ``*.json`` records, or a zip of them
(``https://osv-vulnerabilities.storage.googleapis.com/PyPI/all.zip`` as osv.dev publishes it).
"""

from __future__ import annotations

import json
import math
import re
import threading
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from modelshield.core.errors import FormatError, MissingFileError

ECOSYSTEM = "PyPI"
SEVERITIES = ("unknown", "low", "medium", "high", "critical")
_GHSA_SEVERITY = {"low": "low", "moderate": "medium", "medium": "medium", "high": "high", "critical": "critical"}
_SEMVER = re.compile(
    r"v?(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?(?:\+[0-9A-Za-z.-]+)?"
)

Json = dict[str, Any]
VersionKey = Callable[[str], Any]


def pep440_key(version: str) -> Version:
    """PEP 440 ordering, as PyPI and pip order versions, of the public part (see :func:`public_version`)."""
    return Version(Version(version).public)


def semver_key(version: str) -> tuple[Any, ...]:
    """SemVer 2.0 precedence: a pre-release sorts below its release; numeric identifiers below alphanumeric ones."""
    m = _SEMVER.fullmatch(version.strip())
    if not m:
        raise InvalidVersion(f"not a SemVer version: {version!r}")
    release = tuple(int(m.group(i)) for i in (1, 2, 3))
    if m.group(4) is None:
        return (*release, 1, ())
    ids = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in m.group(4).split("."))
    return (*release, 0, ids)


def _round_up(value: float) -> float:
    """CVSS 3.1 Roundup: the smallest one-decimal number not below ``value``, free of float noise."""
    scaled = round(value * 100_000)
    return scaled / 100_000 if scaled % 10_000 == 0 else (math.floor(scaled / 10_000) + 1) / 10.0


def _vector(vector: str, prefix: str) -> dict[str, str]:
    parts = vector.removeprefix(prefix).split("/")
    return dict(p.split(":", 1) for p in parts if ":" in p)


def cvss3_score(vector: str) -> float:
    """Base score of a CVSS v3.0/v3.1 vector (FIRST CVSS v3.1 specification, section 7.1)."""
    m = _vector(vector, vector.split("/", 1)[0] + "/") if vector.startswith("CVSS:3") else {}
    try:
        changed = m["S"] == "C"
        av = {"N": 0.85, "A": 0.62, "L": 0.55, "P": 0.2}[m["AV"]]
        ac = {"L": 0.77, "H": 0.44}[m["AC"]]
        pr = {"N": 0.85, "L": 0.68 if changed else 0.62, "H": 0.5 if changed else 0.27}[m["PR"]]
        ui = {"N": 0.85, "R": 0.62}[m["UI"]]
        c, i, a = ({"H": 0.56, "L": 0.22, "N": 0.0}[m[k]] for k in ("C", "I", "A"))
    except KeyError:
        raise FormatError(f"not a CVSS v3 base vector: {vector!r}") from None
    iss = 1 - (1 - c) * (1 - i) * (1 - a)
    impact = 7.52 * (iss - 0.029) - 3.25 * (iss - 0.02) ** 15 if changed else 6.42 * iss
    if impact <= 0:
        return 0.0
    exploitability = 8.22 * av * ac * pr * ui
    return _round_up(min((1.08 if changed else 1.0) * (impact + exploitability), 10.0))


def cvss2_score(vector: str) -> float:
    """Base score of a CVSS v2 vector (FIRST CVSS v2 guide, section 3.2.1)."""
    m = _vector(vector.strip().strip("()"), "")
    try:
        av = {"L": 0.395, "A": 0.646, "N": 1.0}[m["AV"]]
        ac = {"H": 0.35, "M": 0.61, "L": 0.71}[m["AC"]]
        au = {"M": 0.45, "S": 0.56, "N": 0.704}[m["Au"]]
        c, i, a = ({"N": 0.0, "P": 0.275, "C": 0.660}[m[k]] for k in ("C", "I", "A"))
    except KeyError:
        raise FormatError(f"not a CVSS v2 base vector: {vector!r}") from None
    impact = 10.41 * (1 - (1 - c) * (1 - i) * (1 - a))
    exploitability = 20 * av * ac * au
    score = (0.6 * impact + 0.4 * exploitability - 1.5) * (0 if impact == 0 else 1.176)
    return round(score + 1e-9, 1)


def rating(score: float) -> str:
    """The qualitative rating CVSS v3 gives a score (v2 scores are rated on the same bands here)."""
    if score >= 9.0:
        return "critical"
    if score >= 7.0:
        return "high"
    if score >= 4.0:
        return "medium"
    return "low" if score > 0 else "unknown"


@dataclass(frozen=True)
class Range:
    """One ``ranges`` entry: its events as (kind, version) in file order, and the ordering it is compared by."""

    type: str
    events: tuple[tuple[str, str], ...]

    def key(self) -> VersionKey:
        return semver_key if self.type == "SEMVER" else pep440_key

    def contains(self, version: str) -> bool:
        """The OSV evaluation algorithm over events sorted by version (``introduced: 0`` sorts first)."""
        key = self.key()
        v = key(version)
        ordered = sorted(
            ((k, e) for k, e in self.events if k != "limit"),
            key=lambda ev: (ev[1] != "0", key(ev[1]) if ev[1] != "0" else 0),
        )
        vulnerable = False
        for kind, at in ordered:
            if kind == "introduced" and (at == "0" or v >= key(at)):
                vulnerable = True
            elif kind == "fixed" and v >= key(at):
                vulnerable = False
            elif kind == "last_affected" and v > key(at):
                vulnerable = False
        limits = [key(at) for k, at in self.events if k == "limit" and at != "*"]
        return vulnerable and (not limits or any(v < lim for lim in limits))

    def fixes_above(self, version: str) -> list[str]:
        """``fixed`` versions above ``version``: what upgrading to leaves this range."""
        key = self.key()
        v = key(version)
        return [at for kind, at in self.events if kind == "fixed" and key(at) > v]


@dataclass(frozen=True)
class Affected:
    """One ``affected`` entry for a PyPI package."""

    package: str
    ranges: tuple[Range, ...]
    versions: frozenset[str]
    severity: str = "unknown"
    score: float | None = None


@dataclass(frozen=True)
class Advisory:
    """An OSV record, kept to what an audit reports: ids, text, severity, and the PyPI packages it affects."""

    id: str
    aliases: tuple[str, ...]
    summary: str
    severity: str
    score: float | None
    vector: str | None
    affected: tuple[Affected, ...]
    published: str | None = None
    modified: str | None = None
    references: tuple[str, ...] = ()

    def matches(self, name: str, version: str) -> Affected | None:
        """The ``affected`` entry that covers ``name`` at ``version`` (``name`` already PEP 503 normalised)."""
        for entry in self.affected:
            if entry.package == name and affects(entry, version):
                return entry
        return None


def public_version(version: str) -> str:
    """``2.2.2+cpu`` is a local build of release 2.2.2, so advisories for 2.2.2 speak for it (PEP 440 public part)."""
    try:
        return Version(version).public
    except InvalidVersion:
        return version


def affects(entry: Affected, version: str) -> bool:
    """Listed in ``versions`` (PEP 440 equal, or the same string), or inside one of the ranges."""
    if version in entry.versions:
        return True
    try:
        parsed = Version(public_version(version))
    except InvalidVersion:
        parsed = None
    if parsed is not None:
        for listed in entry.versions:
            try:
                if Version(listed) == parsed:
                    return True
            except InvalidVersion:
                continue
    for rng in entry.ranges:
        try:
            if rng.contains(version):
                return True
        except InvalidVersion:
            continue  # a version this ordering cannot place; the versions list above still applied
    return False


def _scores(items: Any) -> list[tuple[float, str]]:
    """(score, vector) for every CVSS v2/v3 entry of a ``severity`` list; v4 and unknown types are left out."""
    found = []
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict) or not isinstance(item.get("score"), str):
            continue
        kind, vector = item.get("type"), item["score"].strip()
        try:
            if kind == "CVSS_V3":
                found.append((cvss3_score(vector), vector))
            elif kind == "CVSS_V2":
                found.append((cvss2_score(vector), vector))
        except FormatError:
            continue
    return found


def _database_severity(raw: Any) -> str:
    """GHSA-style ``database_specific.severity`` (LOW, MODERATE, HIGH, CRITICAL)."""
    text = raw.get("severity") if isinstance(raw, dict) else None
    return _GHSA_SEVERITY.get(text.strip().lower(), "unknown") if isinstance(text, str) else "unknown"


def _severity(record: Json, extra: Iterable[Json] = ()) -> tuple[str, float | None, str | None]:
    """The worst CVSS score the record carries, else its database's own rating, else unknown."""
    scores = _scores(record.get("severity")) + [s for e in extra for s in _scores(e.get("severity"))]
    if scores:
        score, vector = max(scores)
        return rating(score), score, vector
    ratings = [_database_severity(record.get("database_specific"))]
    ratings += [_database_severity(e.get("database_specific")) for e in extra]
    return max(ratings, key=SEVERITIES.index), None, None


def _events(raw: Any, where: str) -> tuple[tuple[str, str], ...]:
    events = []
    for event in raw if isinstance(raw, list) else []:
        if not isinstance(event, dict) or len(event) != 1:
            raise FormatError(f"{where}: each range event must be one of introduced/fixed/last_affected/limit")
        ((kind, at),) = event.items()
        if kind not in ("introduced", "fixed", "last_affected", "limit") or not isinstance(at, str):
            raise FormatError(f"{where}: unknown range event {event!r}")
        events.append((kind, at))
    return tuple(events)


def _affected(raw: Any, where: str) -> Iterator[Affected]:
    """The PyPI entries of an ``affected`` list; other ecosystems are skipped."""
    for entry in raw if isinstance(raw, list) else []:
        package = entry.get("package") if isinstance(entry, dict) else None
        if not isinstance(package, dict) or package.get("ecosystem") != ECOSYSTEM:
            continue
        if not isinstance(package.get("name"), str):
            raise FormatError(f"{where}: affected package has no name")
        ranges = tuple(
            Range(r["type"], _events(r.get("events"), where))
            for r in entry.get("ranges") or []
            if isinstance(r, dict) and r.get("type") in ("ECOSYSTEM", "SEMVER")
        )
        versions = entry.get("versions") or []
        if not isinstance(versions, list) or not all(isinstance(v, str) for v in versions):
            raise FormatError(f"{where}: 'versions' must be a list of strings")
        severity, score, _ = _severity({}, [entry])
        yield Affected(canonicalize_name(package["name"]), ranges, frozenset(versions), severity, score)


def parse_advisory(record: Any, where: str = "advisory") -> Advisory | None:
    """One OSV record; ``None`` when it is withdrawn or names no PyPI package."""
    if not isinstance(record, dict) or not isinstance(record.get("id"), str):
        raise FormatError(f"{where}: not an OSV record (an object with an 'id')")
    where = f"{where} {record['id']}"
    if record.get("withdrawn"):
        return None
    affected = tuple(_affected(record.get("affected"), where))
    if not affected:
        return None
    aliases = record.get("aliases") or []
    if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
        raise FormatError(f"{where}: 'aliases' must be a list of strings")
    severity, score, vector = _severity(record, [e for e in record.get("affected") or [] if isinstance(e, dict)])
    text = record.get("summary") or record.get("details") or ""
    refs = tuple(
        r["url"] for r in record.get("references") or [] if isinstance(r, dict) and isinstance(r.get("url"), str)
    )
    return Advisory(
        id=record["id"],
        aliases=tuple(aliases),
        summary=" ".join(str(text).split())[:500],
        severity=severity,
        score=score,
        vector=vector,
        affected=affected,
        published=record.get("published"),
        modified=record.get("modified"),
        references=refs,
    )


def _decode(data: bytes, where: str) -> Any:
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise FormatError(f"{where} is not valid JSON ({exc})") from None


def _records(path: Path) -> Iterator[tuple[Any, str]]:
    """(record, where) for every record in a file, a folder of files, or a zip."""
    if path.is_dir():
        for file in sorted(path.rglob("*.json")):
            yield from _records(file)
    elif zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                if info.filename.endswith(".json") and not info.is_dir():
                    yield _decode(archive.read(info), f"{path}!{info.filename}"), f"{path}!{info.filename}"
    else:
        doc = _decode(path.read_bytes(), str(path))
        for i, record in enumerate(doc if isinstance(doc, list) else [doc]):
            yield record, f"{path}[{i}]" if isinstance(doc, list) else str(path)


def _pypi_names(record: Json, where: str) -> list[str]:
    """The normalised PyPI names a record's ``affected`` entries name: all that indexing needs to look at."""
    names = []
    for entry in record.get("affected") or []:
        package = entry.get("package") if isinstance(entry, dict) else None
        if isinstance(package, dict) and package.get("ecosystem") == ECOSYSTEM:
            if not isinstance(package.get("name"), str):
                raise FormatError(f"{where} {record['id']}: affected package has no name")
            names.append(canonicalize_name(package["name"]))
    return list(dict.fromkeys(names))


@dataclass
class AdvisoryDatabase:
    """PyPI advisories indexed by normalised package name.

    Loading only indexes records by the packages they name; a record is parsed (and fully validated) the first
    time a package it names is looked up, so auditing 150 packages against all of PyPI's advisories parses the
    few hundred that matter, not the tens of thousands that do not.
    """

    source: str
    records: int = 0
    withdrawn: int = 0
    _raw: dict[str, list[tuple[Json, str]]] = field(default_factory=dict, repr=False)
    _parsed: dict[str, Advisory | None] = field(default_factory=dict, repr=False)

    def add_record(self, record: Any, where: str = "advisory") -> None:
        """Index one OSV record; withdrawn ones are counted and dropped."""
        if not isinstance(record, dict) or not isinstance(record.get("id"), str):
            raise FormatError(f"{where}: not an OSV record (an object with an 'id')")
        self.records += 1
        if record.get("withdrawn"):
            self.withdrawn += 1
            return
        if not isinstance(record.get("affected", []), list):
            raise FormatError(f"{where} {record['id']}: 'affected' must be a list")
        for name in _pypi_names(record, where):
            self._raw.setdefault(name, []).append((record, where))

    def packages(self) -> set[str]:
        """Normalised names of the PyPI packages some live advisory names."""
        return set(self._raw)

    def _parsed_records(self, name: str) -> Iterator[tuple[Json, Advisory]]:
        for record, where in self._raw.get(name, []):
            key = f"{where}#{record['id']}"
            if key not in self._parsed:
                self._parsed[key] = parse_advisory(record, where)
            if (advisory := self._parsed[key]) is not None:
                yield record, advisory

    def advisories(self, name: str) -> list[Advisory]:
        """The parsed advisories naming ``name``; a malformed one fails here, naming the record."""
        return [advisory for _, advisory in self._parsed_records(canonicalize_name(name))]

    def lookup(self, name: str, version: str) -> list[tuple[Advisory, Affected]]:
        """Every advisory affecting ``name`` at ``version``, with the ``affected`` entry that matched."""
        key = canonicalize_name(name)
        return [(a, entry) for a in self.advisories(key) if (entry := a.matches(key, version)) is not None]

    def query(self, name: str, version: str) -> list[Json]:
        """The OSV records affecting ``name`` at ``version``, as api.osv.dev's ``/v1/query`` returns them."""
        key = canonicalize_name(name)
        return [record for record, a in self._parsed_records(key) if a.matches(key, version) is not None]


def serve_query_api(db: AdvisoryDatabase, host: str = "127.0.0.1", port: int = 0) -> ThreadingHTTPServer:
    """An OSV ``POST /v1/query`` endpoint over ``db`` on a background thread: an air-gapped mirror for OSV
    clients such as ``pip-audit -s osv --osv-url http://HOST:PORT/v1/query``. Call ``shutdown()`` to stop it."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            try:
                query = json.loads(self.rfile.read(min(int(self.headers.get("Content-Length", 0)), 1 << 16)))
                vulns = db.query(query["package"]["name"], query["version"])
            except (ValueError, KeyError, TypeError, FormatError):
                self.send_error(400, 'expected {"package": {"name": ...}, "version": ...}')
                return
            body = json.dumps({"vulns": vulns} if vulns else {}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def load_advisories(path: Path | str) -> AdvisoryDatabase:
    """Read an OSV export: a file that is not JSON, or a record without an id, fails the whole load."""
    p = Path(path)
    if not p.exists():
        raise MissingFileError(f"OSV advisory file {p} does not exist")
    db = AdvisoryDatabase(str(p))
    for record, where in _records(p):
        db.add_record(record, where)
    if db.records == 0:
        raise FormatError(
            f"{p} holds no OSV records", hint="expected a JSON record, a JSON list, or a folder/zip of *.json"
        )
    return db
