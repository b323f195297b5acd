"""The serving generation: one number in the shared store that grows with every change serving replicas apply.

The registry (pins, promotions, retirements, quarantines) and the gateway's fleet controls (quarantines, rate-limit
overrides, the guard's mode) bump it in the same transaction as the change, so a replica that polls this one
number learns that something changed without reading anything else, and "replica X applied generation N" says
exactly which changes it has. The counter is one row updated in place: PostgreSQL's row lock (SQLite's write
lock) serialises concurrent bumps, so no two changes share a number and it never goes back.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from modelshield.core.storage import ensure_schema

_ROW = "serving"
metadata = sa.MetaData()
generations = sa.Table(
    "modelshield_generation",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("generation", sa.BigInteger, nullable=False),
)


def _first_row(conn: Connection) -> None:
    conn.execute(generations.insert().values(name=_ROW, generation=0))


def ensure(engine: Engine) -> None:
    """Create the counter (at 0) the first time this store is used for serving."""
    ensure_schema(engine, "generation", metadata, 1, after_create=_first_row)


def bump(conn: Connection) -> int:
    """Count one change, inside the caller's write transaction (it commits or rolls back with the change)."""
    conn.execute(generations.update().where(generations.c.name == _ROW).values(generation=generations.c.generation + 1))
    return read(conn)


def read(conn: Connection) -> int:
    """The generation as ``conn`` sees it now."""
    value = conn.execute(sa.select(generations.c.generation).where(generations.c.name == _ROW)).scalar()
    return int(value or 0)


def current(engine: Engine) -> int:
    """The store's generation now: the one cheap query a replica polls."""
    with engine.connect() as conn:
        return read(conn)
