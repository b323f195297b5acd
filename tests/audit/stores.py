"""Real stores for the audit and registry tests: a SQLite file, and a throwaway database on the local PostgreSQL.

PostgreSQL is started if it is down (never skipped); one database ``ms_test_<random>`` per test session, one
schema per test inside it, all dropped at the end.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
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


def run_cli(
    args: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str, str]:
    """``modelshield ARGS`` through the real entry point: (exit code, stdout, stderr)."""
    return invoke_main(args, monkeypatch, capsys)


class PrivatePostgres:
    """A PostgreSQL server of our own (``initdb`` in a temp folder, a free port) that a test may kill and restart
    without disturbing the shared local one other tests use."""

    def __init__(self, root: Path, port: int) -> None:
        self.root, self.port = root, port
        self.bin = sorted(Path("/usr/lib/postgresql").glob("*/bin"))[-1]
        self.url = f"postgresql://postgres@127.0.0.1:{port}/postgres"

    def _ctl(self, *args: str) -> None:
        subprocess.run(
            ["runuser", "-u", "postgres", "--", str(self.bin / "pg_ctl"), "-D", str(self.root / "data"), *args],
            check=True,
            capture_output=True,
            timeout=60,
        )

    def init(self) -> None:
        subprocess.run(
            [
                "runuser",
                "-u",
                "postgres",
                "--",
                str(self.bin / "initdb"),
                "-D",
                str(self.root / "data"),
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-sync",
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )

    def start(self) -> None:
        self._ctl(
            "-l",
            str(self.root / "server.log"),
            "-w",
            "-t",
            "60",
            "-o",
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1",
            "start",
        )

    def crash(self) -> None:
        """``pg_ctl -m immediate``: every server process quits at once, no checkpoint (recovery replays the WAL)."""
        self._ctl("-m", "immediate", "stop")


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    if os.geteuid() != 0 or not Path("/usr/lib/postgresql").is_dir():
        pytest.skip("needs root (to run initdb as the postgres user) and a local PostgreSQL installation")
    root = Path(tempfile.mkdtemp(prefix="ms-pg-"))  # not under pytest's tmp_path: the postgres user must reach it
    shutil.chown(root, "postgres")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = PrivatePostgres(root, port)
    server.init()
    server.start()
    try:
        yield server
    finally:
        with contextlib.suppress(subprocess.SubprocessError):
            server.crash()  # nothing to keep: the quickest stop
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs mounted for the test: a disk that really fills up (ENOSPC, short writes)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m,mode=0755", "tmpfs", str(mount)], capture_output=True, text=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk: Path) -> Path:
    """Fill ``disk`` to the last byte with one file; returns it (delete it to free the space)."""
    filler = disk / "filler"
    with filler.open("wb", buffering=0) as f:
        chunk = b"\0" * 4096
        with contextlib.suppress(OSError):
            while True:
                f.write(chunk)
        with contextlib.suppress(OSError):
            while True:
                f.write(b"\0")
    return filler
