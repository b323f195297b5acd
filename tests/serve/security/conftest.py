"""Fixtures for the gateway security tests: a SQLite store, a pepper, and the real local Redis."""

from __future__ import annotations

import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from modelshield.serve.apikeys import ApiKeyStore

REDIS_URL = "redis://127.0.0.1:6379/0"


def _redis_up() -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(REDIS_URL, socket_connect_timeout=0.5).ping())
    except redis.RedisError:
        return False


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The local Redis, started the documented way if it is down; the test fails (never skips) if it cannot start."""
    if not _redis_up():
        assert shutil.which("redis-server"), "redis-server is not installed; the Redis tests need it"
        Path("/var/lib/redis").mkdir(parents=True, exist_ok=True)
        Path("/var/log/redis").mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                "redis-server",
                "--daemonize",
                "yes",
                "--bind",
                "127.0.0.1",
                "-::1",
                "--port",
                "6379",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                "/var/lib/redis",
                "--logfile",
                "/var/log/redis/ci.log",
            ],
            check=True,
        )
        for _ in range(50):
            if _redis_up():
                break
            time.sleep(0.1)
    assert _redis_up(), "could not start Redis on 127.0.0.1:6379"
    return REDIS_URL


@pytest.fixture
def redis_prefix() -> str:
    """A key prefix unique to the test, so parallel runs and other helpers do not collide."""
    return f"mstest:{secrets.token_hex(6)}:"


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[sa.Engine]:
    eng = sa.create_engine(f"sqlite:///{tmp_path / 'store.db'}")
    yield eng
    eng.dispose()


@pytest.fixture
def pepper() -> bytes:
    return secrets.token_bytes(32)


@pytest.fixture
def store(engine: sa.Engine, pepper: bytes) -> Iterator[ApiKeyStore]:
    s = ApiKeyStore(engine, pepper)
    yield s
    s.close()


def _postgres_up() -> bool:
    try:
        with sa.create_engine("postgresql+psycopg://postgres@127.0.0.1:5432/test").connect():
            return True
    except sa.exc.OperationalError:
        return False


@pytest.fixture
def pg_engine() -> Iterator[sa.Engine]:
    """A throw-away database on the local PostgreSQL (started if down; fails, never skips, if it cannot be)."""
    if not _postgres_up():
        version = sorted(Path("/etc/postgresql").iterdir())[-1].name
        subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start"], check=False)
        for _ in range(50):
            if _postgres_up():
                break
            time.sleep(0.2)
    assert _postgres_up(), "could not reach or start PostgreSQL on 127.0.0.1:5432"
    name = f"mstest_{secrets.token_hex(4)}"
    admin = sa.create_engine("postgresql+psycopg://postgres@127.0.0.1:5432/test", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    from modelshield.core.storage import open_engine

    eng = open_engine(f"postgresql://postgres@127.0.0.1:5432/{name}")
    yield eng
    eng.dispose()
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    admin.dispose()
