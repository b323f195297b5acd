"""Audit tables, their append-only guards, and the hash that chains one record to the next.

``hash = SHA-256(prev_hash || seq as 8 bytes big-endian || recorded_at as 8 bytes big-endian || event)``,
``event`` being the record's canonical JSON (RFC 8785) and ``prev_hash`` the previous record's hash (32 zero
bytes before the first). Folding ``seq`` and the time into the hash means a record cannot be moved, renumbered
or re-dated without breaking it and every record after it.
"""

from __future__ import annotations

import hashlib

import sqlalchemy as sa
from sqlalchemy.engine import Connection

COMPONENT = "audit"
SCHEMA_VERSION = 1
GENESIS = bytes(32)
WRITE_LOCK = "modelshield-audit"

metadata = sa.MetaData()
records = sa.Table(
    "audit_records",
    metadata,
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("recorded_at", sa.BigInteger, nullable=False),  # microseconds since the Unix epoch, UTC
    sa.Column("event", sa.Text, nullable=False),  # canonical JSON
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
)
checkpoints = sa.Table(
    "audit_checkpoints",
    metadata,
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),  # tree size: records 1..seq
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("root", sa.String(64), nullable=False),
    sa.Column("key_id", sa.String(64), nullable=False),
    sa.Column("signature", sa.String(128), nullable=False),
    sa.Column("frontier", sa.Text, nullable=False),  # cache of subtree roots; verify never trusts it
)
meta = sa.Table(
    "audit_meta",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)
GUARDED = (records.name, checkpoints.name)


def record_hash(prev: bytes, seq: int, recorded_at: int, event: bytes) -> bytes:
    """The chain hash of one record (see the module docstring)."""
    return hashlib.sha256(prev + seq.to_bytes(8, "big") + recorded_at.to_bytes(8, "big") + event).digest()


def install_append_only(conn: Connection) -> None:
    """Make the database itself refuse UPDATE, DELETE (and on PostgreSQL TRUNCATE) of audit rows.

    This stops mistakes and the gateway's own SQL; an attacker with owner rights can drop the triggers,
    which is why the chain and the signed checkpoints exist (``verify`` warns when the guards are gone).
    """
    if conn.dialect.name == "sqlite":
        for table in GUARDED:
            for op in ("UPDATE", "DELETE"):
                conn.exec_driver_sql(
                    f"CREATE TRIGGER IF NOT EXISTS {table}_no_{op.lower()} BEFORE {op} ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END"
                )
        return
    conn.exec_driver_sql(
        "CREATE OR REPLACE FUNCTION modelshield_append_only() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN RAISE EXCEPTION '%% is append-only', TG_TABLE_NAME; END $$"
    )
    for table in GUARDED:
        for name, timing in (
            (f"{table}_no_change", "BEFORE UPDATE OR DELETE ON {t} FOR EACH ROW"),
            (f"{table}_no_truncate", "BEFORE TRUNCATE ON {t} FOR EACH STATEMENT"),
        ):
            conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {name} ON {table}")
            conn.exec_driver_sql(
                f"CREATE TRIGGER {name} {timing.format(t=table)} EXECUTE FUNCTION modelshield_append_only()"
            )


def guards_present(conn: Connection) -> bool:
    """Whether every append-only trigger is still installed."""
    if conn.dialect.name == "sqlite":
        names = {r[0] for r in conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'trigger'")}
        return {f"{t}_no_{op}" for t in GUARDED for op in ("update", "delete")} <= names
    rows = conn.execute(
        sa.text(
            "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal AND tgenabled <> 'D' "
            "AND tgrelid = ANY(CAST(:tables AS regclass[]))"
        ),
        {"tables": list(GUARDED)},
    )
    names = {r[0] for r in rows}
    return {f"{t}_no_{kind}" for t in GUARDED for kind in ("change", "truncate")} <= names
