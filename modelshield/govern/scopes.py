"""What consent scopes, access requests and DPAs share: data-set references, purposes, times and the audit trail.

A data-set reference (``ref``) is a digest (``sha256:<hex>``, the bytes), or a lineage data-set name or a
shell-style pattern over names (``*/data/incoming.csv``). A reference matches an accessed data set when the digest
is its digest, the pattern matches its name, or the lineage store holds an event naming a data set that matches the
pattern with the accessed bytes' digest (a copy of the same file under another path is the same data set).

Times are stored as UTC ISO 8601 text; an expiry given on the command line may be a time (``2027-01-01``) or a
duration from now (``90d``, ``12h``).
"""

from __future__ import annotations

import fnmatch
import getpass
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Self

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from modelshield.core.errors import InputError, MissingFileError
from modelshield.core.storage import ensure_schema, open_engine

if TYPE_CHECKING:
    from modelshield.audit.log import AuditLog

#: what data may be used for; others may be recorded (lower case, digits, ``-`` and ``_``)
COMMON_PURPOSES = ("training", "evaluation", "inference", "analytics", "marketing", "research")
_PURPOSE = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([dhm])$")


def check_purpose(purpose: str) -> str:
    """A purpose name, checked (``training``, ``evaluation``, ...)."""
    if not _PURPOSE.fullmatch(purpose):
        raise InputError(f"purpose {purpose!r} must be a lower-case word such as {', '.join(COMMON_PURPOSES[:4])}")
    return purpose


def check_ref(ref: str) -> str:
    """A data-set reference, checked: a ``sha256:`` digest or a name / pattern without spaces or commas."""
    if ref.startswith("sha256:") and not _DIGEST.fullmatch(ref):
        raise InputError(f"{ref!r} is not a digest (sha256: and 64 lower-case hex digits)")
    if not ref or any(c.isspace() or c in ",'\"" for c in ref):
        raise InputError(f"data set {ref!r} must be a name, a pattern or a digest without spaces, commas or quotes")
    return ref


def login() -> str:
    """Who is acting when no one is named: the login name."""
    return getpass.getuser()


def now_utc() -> datetime:
    return datetime.now(UTC)


def iso(when: datetime) -> str:
    """UTC ISO 8601 to the second (what the tables store)."""
    return when.astimezone(UTC).isoformat(timespec="seconds")


def parse_time(text: str | None) -> datetime | None:
    """A stored time back as an aware datetime."""
    return None if text is None else datetime.fromisoformat(text)


def parse_expiry(text: str, now: datetime, what: str = "--expires") -> datetime:
    """``text`` as an instant: ISO 8601 (a date means its midnight UTC) or a duration from ``now`` (90d, 12h, 30m)."""
    if match := _DURATION.fullmatch(text.strip()):
        amount, unit = float(match.group(1)), match.group(2)
        return now + timedelta(**{{"d": "days", "h": "hours", "m": "minutes"}[unit]: amount})
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InputError(
            f"{what} {text!r} is neither an ISO 8601 time (2027-01-01) nor a duration (90d, 12h)"
        ) from None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


@dataclass(frozen=True)
class DataTarget:
    """The data set an access names: its name (an absolute path for a file) and its digest when known."""

    name: str
    digest: str | None = None

    @classmethod
    def of(cls, dataset: str | Path) -> DataTarget:
        """A file (named by its absolute path, with the digest of its bytes), a digest, or a lineage name."""
        from modelshield.govern.erasure import file_digest

        text = str(dataset)
        if _DIGEST.fullmatch(text):
            return cls(text, text)
        path = Path(text)
        if path.is_file():
            return cls(str(path.resolve()), file_digest(path))
        if path.is_dir():
            raise InputError(f"{path} is a folder: name the data file it holds")
        return cls(check_ref(text))

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "digest": self.digest}


def resolve_target(engine: Engine, dataset: str | Path) -> DataTarget:
    """``DataTarget.of(dataset)``; a name that is not a file must be one the lineage store holds (its newest digest
    is then the target's), else ``MissingFileError``: a mistyped path is an error, not an access to nothing."""
    from modelshield.govern.lineage import LineageStore, datasets, events

    target = DataTarget.of(dataset)
    if target.digest is not None:
        return target
    LineageStore(engine)
    query = (
        sa.select(datasets.c.digest)
        .join(events, events.c.event_hash == datasets.c.event_hash)
        .where(datasets.c.name == target.name, datasets.c.digest.is_not(None))
        .order_by(events.c.id.desc())
        .limit(1)
    )
    with engine.connect() as conn:
        digest = conn.execute(query).scalar()
    if digest is None:
        raise MissingFileError(f"{target.name} is neither a file nor a data set the lineage store names")
    return DataTarget(target.name, str(digest))


def ref_matches(ref: str, target: DataTarget, known: Mapping[str, frozenset[str]]) -> bool:
    """Whether ``ref`` names ``target``: the same digest, a name pattern matching it, or a lineage data set matching
    the pattern with the target's digest (``known``: ref → digests, from ``lineage_digests``)."""
    if ref.startswith("sha256:"):
        return ref == target.digest
    if ref == target.name or fnmatch.fnmatchcase(target.name, ref):
        return True
    return target.digest is not None and target.digest in known.get(ref, frozenset())


def lineage_digests(engine: Engine, refs: Iterable[str]) -> dict[str, frozenset[str]]:
    """For each name pattern, the digests of the data sets the lineage store names with a matching name."""
    from modelshield.govern.lineage import LineageStore, datasets

    patterns = sorted({r for r in refs if not r.startswith("sha256:")})
    if not patterns:
        return {}
    LineageStore(engine)  # creates the tables in a fresh store
    query = sa.select(datasets.c.name, datasets.c.digest).where(datasets.c.digest.is_not(None)).distinct()
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    return {p: frozenset(str(r.digest) for r in rows if fnmatch.fnmatchcase(r.name, p)) for p in patterns}


def insert_row(conn: sa.Connection, table: sa.Table, values: Mapping[str, Any]) -> int:
    """Insert one row and return its integer primary key."""
    key = conn.execute(table.insert().values(**values)).inserted_primary_key
    assert key is not None  # every governance table has an autoincrement key
    return int(key[0])


class AuditedRecords:
    """A governance table in the shared store whose every change is an audit event (who, what, when).

    ``audit`` defaults to the store's own audit log (as the registry does), opened on the first change."""

    component: ClassVar[str]
    metadata: ClassVar[sa.MetaData]
    schema_version: ClassVar[int] = 1

    def __init__(self, engine: Engine, audit: AuditLog | None = None) -> None:
        ensure_schema(engine, self.component, self.metadata, self.schema_version)
        self._engine = engine
        self._audit = audit
        self._own_audit = audit is None

    @classmethod
    def open(cls, url: str | None = None, *, audit: AuditLog | None = None) -> Self:
        return cls(open_engine(url), audit)

    @property
    def engine(self) -> Engine:
        return self._engine

    def close(self) -> None:
        if self._own_audit and self._audit is not None:
            self._audit.close()  # also disposes the engine
        elif self._own_audit:
            self._engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def record(self, action: str, by: str | None, *, decision: str = "allow", **fields: Any) -> int:
        """Append ``govern.<action>`` by ``by`` (default: the login name) to the audit log; returns its sequence."""
        from modelshield.audit.log import AuditLog

        if self._audit is None:
            self._audit = AuditLog(self._engine)
        event = {
            "time": iso(now_utc()),
            "action": f"govern.{action}",
            "actor": {"subject": by or login(), "method": "local"},
            "decision": decision,
            **{k: v for k, v in fields.items() if v is not None},
        }
        return self._audit.append(event)


__all__ = [
    "COMMON_PURPOSES",
    "AuditedRecords",
    "DataTarget",
    "check_purpose",
    "check_ref",
    "insert_row",
    "iso",
    "lineage_digests",
    "login",
    "now_utc",
    "parse_expiry",
    "parse_time",
    "ref_matches",
    "resolve_target",
]
