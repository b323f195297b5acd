"""Real stores for the audit and registry tests: a SQLite file, and a throwaway database on the local PostgreSQL.

PostgreSQL is started if it is down (never skipped); one database ``ms_test_<random>`` per test session, one
schema per test inside it, all dropped at the end.
"""

from __future__ import annotations

import secrets
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa
from entrypoint import invoke_main

PG_ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
PG_URL = "postgresql://postgres@127.0.0.1:5432/{db}"


def _start_postgres() -> None:
    try:
        psycopg.connect(PG_ADMIN, connect_timeout=3).close()
        return
    except psycopg.OperationalError:
        pass
    version = sorted(p.name for p in Path("/etc/postgresql").iterdir())[-1]
    subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start"], check=True)
    for _ in range(60):
        try:
            psycopg.connect(PG_ADMIN, connect_timeout=3).close()
            return
        except psycopg.OperationalError:
            time.sleep(0.5)
    raise RuntimeError("PostgreSQL did not come up on 127.0.0.1:5432")


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """The name of a fresh PostgreSQL database for this test session."""
    _start_postgres()
    name = f"ms_test_{secrets.token_hex(6)}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    yield name
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty store of each kind: a new SQLite file, or a new schema in the session's PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'modelshield.db'}"
    db = request.getfixturevalue("pg_database")
    schema = f"t_{secrets.token_hex(6)}"
    with psycopg.connect(PG_ADMIN.replace("dbname=postgres", f"dbname={db}"), autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    return PG_URL.format(db=db) + f"?options=-csearch_path%3D{schema}"


def attack(url: str, *statements: str) -> None:
    """Run SQL as an attacker with owner rights would: drop the append-only triggers first."""
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            for table in ("audit_records", "audit_checkpoints"):
                for op in ("update", "delete"):
                    conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {table}_no_{op}")
        else:
            for table in ("audit_records", "audit_checkpoints"):
                for kind in ("change", "truncate"):
                    conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {table}_no_{kind} ON {table}")
        for statement in statements:
            conn.exec_driver_sql(statement)
    engine.dispose()


def run_cli(args: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """``modelshield ARGS`` through the real entry point: (exit code, stdout, stderr)."""
    return invoke_main(args, monkeypatch, capsys)
