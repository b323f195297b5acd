"""The shared store: SQLAlchemy over embedded SQLite by default, PostgreSQL by URL for teams.

Where the data lives, highest precedence first: the ``url`` argument (``--db``), ``$MODELSHIELD_DB_URL``,
``sqlite:///$MODELSHIELD_HOME/modelshield.db`` (``MODELSHIELD_HOME`` defaults to
``$XDG_DATA_HOME/modelshield``, i.e. ``~/.local/share/modelshield``).

SQLite connections run in WAL mode with ``synchronous=FULL`` (a commit is fsynced before it returns),
a busy timeout instead of instant ``database is locked`` errors, and foreign keys on. PostgreSQL goes through
psycopg 3 (``postgresql://`` is accepted and means ``postgresql+psycopg://``) with ``synchronous_commit=on``
for our sessions, so a commit is flushed to the WAL on disk before it returns. A pooled PostgreSQL connection
is checked before use (a restarted server's dead connections are replaced, not handed out), and a new one
gives up after ``CONNECT_TIMEOUT_S`` unless the URL sets ``connect_timeout``.

``open_engine(url, durability="process")`` relaxes that for callers that chose to: SQLite ``synchronous=NORMAL``
(in WAL mode a commit is in the OS page cache when it returns — it survives the process being killed, not a
power loss or kernel crash), PostgreSQL ``synchronous_commit=off`` (the server holds the commit; a server
crash may lose the last few hundred milliseconds).

Each component (audit, registry, api keys...) keeps its own schema version in ``modelshield_schema``;
``ensure_schema`` creates the tables the first time, runs the component's migrations when the database is
older, and refuses a database written by a newer modelshield rather than guess at its layout.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from modelshield.core.errors import DependencyError, FormatError, InputError

ENV_URL = "MODELSHIELD_DB_URL"
ENV_HOME = "MODELSHIELD_HOME"
BUSY_TIMEOUT_MS = 30_000
CONNECT_TIMEOUT_S = 5  # PostgreSQL: psycopg waits 130 s for a server that accepts but does not answer
_IMMEDIATE = "modelshield_immediate"
Durability = Literal["fsync", "process"]
_SQLITE_SYNC = {"fsync": "FULL", "process": "NORMAL"}
_PG_SYNC = {"fsync": "on", "process": "off"}

Migration = Callable[[Connection], None]

_schema_meta = sa.MetaData()
schema_versions = sa.Table(
    "modelshield_schema",
    _schema_meta,
    sa.Column("component", sa.String(64), primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
)
_ensured: weakref.WeakKeyDictionary[Engine, set[str]] = weakref.WeakKeyDictionary()


def data_home() -> Path:
    """The folder for modelshield's own data (the default SQLite database)."""
    if os.environ.get(ENV_HOME):
        return Path(os.environ[ENV_HOME]).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(xdg) / "modelshield"


def database_url(url: str | None = None) -> str:
    """The database to use: ``url`` if given, else ``$MODELSHIELD_DB_URL``, else SQLite in the data home."""
    chosen = url or os.environ.get(ENV_URL)
    if chosen:
        return chosen
    return f"sqlite:///{data_home() / 'modelshield.db'}"


def safe_url(url: str) -> str:
    """The URL with any password replaced by ``***``, for messages and logs."""
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable database URL>"


def _normalise(url: str) -> sa.URL:
    """Parse and pick the driver: SQLite's built-in one, psycopg 3 for PostgreSQL; refuse the rest."""
    try:
        parsed = sa.make_url(url)
    except ArgumentError:
        raise InputError(
            f"database URL {safe_url(url)!r} is not valid",
            hint="use sqlite:///path/to/file.db or postgresql://user@host/dbname",
        ) from None
    backend, _, driver = parsed.drivername.partition("+")
    if backend == "postgres":
        backend = "postgresql"
    if backend == "sqlite" and driver in ("", "pysqlite"):
        return parsed.set(drivername="sqlite")
    if backend == "postgresql" and driver in ("", "psycopg"):
        return parsed.set(drivername="postgresql+psycopg")
    raise InputError(
        f"database URL scheme {parsed.drivername!r} is not supported",
        hint="use sqlite:///path/to/file.db or postgresql://user@host/dbname (psycopg 3)",
    )


def _sqlite_events(engine: Engine, durability: Durability) -> None:
    """Per-connection pragmas, and BEGIN issued by us so a write transaction can take the lock up front."""

    @sa.event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we send BEGIN ourselves (see _begin)
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA journal_mode = WAL")
        cur.execute(f"PRAGMA synchronous = {_SQLITE_SYNC[durability]}")
        cur.execute("PRAGMA foreign_keys = ON")
        cur.close()

    @sa.event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(_IMMEDIATE) else "BEGIN")


def _postgres_events(engine: Engine, durability: Durability) -> None:
    """Our sessions commit durably even where the server default was relaxed."""

    @sa.event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        with dbapi_conn.cursor() as cur:
            cur.execute(f"SET synchronous_commit TO {_PG_SYNC[durability]}")
        dbapi_conn.commit()


def open_engine(url: str | None = None, *, durability: Durability = "fsync") -> Engine:
    """An engine for the store at ``url`` (see ``database_url``), configured for durable commits.

    ``durability="fsync"`` (default): a commit is on disk when it returns. ``"process"``: it is with the OS
    (SQLite) or the database server (PostgreSQL) — it survives ``kill -9`` of this process, not a power loss.
    """
    if durability not in _SQLITE_SYNC:
        raise InputError(f"durability must be 'fsync' or 'process', not {durability!r}")
    parsed = _normalise(database_url(url))
    if parsed.drivername == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            folder = Path(parsed.database).expanduser().absolute().parent
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        engine = sa.create_engine(parsed)
        _sqlite_events(engine, durability)
        return engine
    try:
        import psycopg  # noqa: F401 - fail here with a clear message rather than deep inside SQLAlchemy
    except ImportError:
        raise DependencyError("PostgreSQL needs psycopg 3", hint="pip install 'modelshield[postgres]'") from None
    # A URL's own ?connect_timeout= wins; without one a new connection gives up after CONNECT_TIMEOUT_S
    connect_args = {} if "connect_timeout" in parsed.query else {"connect_timeout": CONNECT_TIMEOUT_S}
    engine = sa.create_engine(parsed, pool_pre_ping=True, connect_args=connect_args)
    _postgres_events(engine, durability)
    return engine


@contextmanager
def write_transaction(engine: Engine, lock: str) -> Iterator[Connection]:
    """A transaction holding the database-wide write lock named ``lock`` from its first statement.

    SQLite: ``BEGIN IMMEDIATE`` (one writer at a time, readers carry on under WAL). PostgreSQL: a
    transaction-scoped advisory lock on ``lock``. Read-then-write sequences (the audit chain head, the next
    model version number) are then safe across threads and processes.
    """
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            conn.execution_options(**{_IMMEDIATE: True})
        with conn.begin():
            if engine.dialect.name == "postgresql":
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": lock})
            yield conn


def ensure_schema(
    engine: Engine,
    component: str,
    metadata: sa.MetaData,
    version: int,
    *,
    after_create: Migration | None = None,
    migrations: Mapping[int, Migration] | None = None,
) -> None:
    """Create ``component``'s tables, or migrate them from an older version; refuse a newer database.

    ``after_create`` runs once, after the tables are created (triggers, grants); ``migrations[n]`` upgrades
    version ``n`` to ``n + 1``. Everything happens in one locked transaction, so concurrent first opens
    from several processes create the schema exactly once.
    """
    done = _ensured.setdefault(engine, set())
    if component in done:
        return
    try:
        with write_transaction(engine, "modelshield-schema") as conn:
            _schema_meta.create_all(conn)
            row = conn.execute(
                sa.select(schema_versions.c.version).where(schema_versions.c.component == component)
            ).first()
            if row is None:
                metadata.create_all(conn)
                if after_create is not None:
                    after_create(conn)
                conn.execute(schema_versions.insert().values(component=component, version=version))
            elif row.version > version:
                raise FormatError(
                    f"database {safe_url(str(engine.url))}: {component} schema is version {row.version}, "
                    f"this modelshield understands up to {version}",
                    hint="upgrade modelshield; an older release must not write to a newer database",
                )
            elif row.version < version:
                for step in range(row.version, version):
                    if migrations is None or step not in migrations:
                        raise FormatError(f"no migration for the {component} schema from version {step} to {step + 1}")
                    migrations[step](conn)
                conn.execute(
                    schema_versions.update().where(schema_versions.c.component == component).values(version=version)
                )
    except SQLAlchemyError as exc:
        raise InputError(
            f"cannot open the database {safe_url(str(engine.url))}: {exc.__class__.__name__}: "
            f"{str(exc.orig if hasattr(exc, 'orig') else exc).splitlines()[0]}"
        ) from None
    done.add(component)
