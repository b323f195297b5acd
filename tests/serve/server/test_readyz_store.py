"""``/readyz`` on the real shared stores: PostgreSQL (through a TCP forwarder the test can cut or black-hole, so the
shared server itself is never stopped) and Redis. A replica that cannot reach its store or its Redis leaves the
balancer within a couple of seconds, comes back by itself, never makes a probe wait, and never lets probes hammer
the database."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from modelshield.serve.readiness import CACHE_SECONDS, CHECK_SECONDS
from tests.serve.security.conftest import pg_engine, redis_url  # noqa: F401 - fixtures: started if down, never skipped
from tests.serve.server.conftest import ARCH, free_socket, make_state, running, secure_config


class Forwarder:
    """TCP on a free loopback port to ``127.0.0.1:target``; ``mode`` is ``forward``, ``drop`` (accept and close at
    once, and every open connection cut) or ``blackhole`` (accept, never answer)."""

    def __init__(self, target: int) -> None:
        self.target, self.mode, self.accepted = target, "forward", 0
        self._listener = free_socket()
        self._listener.listen(64)
        self.port = self._listener.getsockname()[1]
        self._open: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            self.accepted += 1
            if self.mode == "drop":
                conn.close()
                continue
            self._open.append(conn)
            if self.mode == "forward":
                upstream = socket.create_connection(("127.0.0.1", self.target))
                self._open.append(upstream)
                threading.Thread(target=self._pipe, args=(conn, upstream), daemon=True).start()
                threading.Thread(target=self._pipe, args=(upstream, conn), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def set(self, mode: str) -> None:
        self.mode = mode
        if mode == "drop":
            for s in self._open:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()
            self._open.clear()

    def close(self) -> None:
        self.set("drop")
        self._listener.close()


@pytest.fixture
def forwarder(pg_engine: sa.Engine) -> Any:  # noqa: F811 - the imported fixture
    fwd = Forwarder(pg_engine.url.port or 5432)
    yield fwd, pg_engine.url.set(port=fwd.port).render_as_string(hide_password=False)
    fwd.close()


def _config(
    tmp_path: Path, weights: tuple[Path, str], db_url: str | None, redis: str | None, **rate_limits: Any
) -> Any:
    """Every control on, on ``db_url`` and ``redis`` (None: from ``$MODELSHIELD_DB_URL[_FILE]`` and the Redis twin)."""
    path, digest = weights
    state = make_state(tmp_path / "state", {})
    return secure_config(
        state,
        {"demo": {"path": str(path), "digest": digest, **ARCH}},
        server={"store_url": db_url},
        audit={"db_url": db_url},
        rate_limits={"redis_url": redis, **rate_limits},
    )


def _ready(url: str) -> httpx.Response:
    return httpx.get(url + "/readyz", timeout=10)


def _until(url: str, status: int, store: str, within: float) -> httpx.Response:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        r = _ready(url)
        if r.status_code == status and r.json()["store"] == store:
            break
        time.sleep(0.1)
    return r


def test_ready_on_healthy_postgres_and_redis_and_probes_cost_at_most_one_connection_a_second(
    tmp_path: Path,
    weights: tuple[Path, str],
    forwarder: tuple[Forwarder, str],
    redis_url: str,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fwd, db_url = forwarder
    # as deployed (deploy/k8s): both URLs from files of a mounted Secret, named by *_FILE variables
    for name, value in (("MODELSHIELD_DB_URL", db_url), ("MODELSHIELD_REDIS_URL", redis_url)):
        (tmp_path / name).write_text(value + "\n")
        monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv(f"{name}_FILE", str(tmp_path / name))
    with running(_config(tmp_path, weights, None, None)) as url:
        r = _ready(url)
        assert r.status_code == 200, r.text
        assert r.json() == {"status": "ready", "broken": [], "audit_log": "ok", "store": "ok", "redis": "ok"}
        before, started = fwd.accepted, time.monotonic()
        with httpx.Client(base_url=url, timeout=10) as client:
            for _ in range(50):
                assert client.get("/readyz").status_code == 200
        elapsed = time.monotonic() - started
        # one new connection per check (it checks what a fresh replica would need), at most one check per second
        assert fwd.accepted - before <= elapsed / CACHE_SECONDS + 1, (fwd.accepted - before, elapsed)


def test_unready_while_the_store_is_unreachable_and_ready_again_when_it_returns(
    tmp_path: Path,
    weights: tuple[Path, str],
    forwarder: tuple[Forwarder, str],
    redis_url: str,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    fwd, db_url = forwarder
    with running(_config(tmp_path, weights, db_url, redis_url)) as url:
        assert _ready(url).status_code == 200
        fwd.set("drop")  # every connection to PostgreSQL refused or cut: a network partition
        r = _until(url, 503, "failing", within=5)
        assert r.status_code == 503 and r.json()["store"] == "failing" and r.json()["redis"] == "ok", r.text
        assert "127.0.0.1" not in r.text and "postgres" not in r.text  # anonymous probes learn no host or reason
        with httpx.Client(base_url=url, timeout=10) as client:
            for _ in range(30):  # anyone may ask /readyz: asking often must not flood the gateway's log
                assert client.get("/readyz").status_code == 503
        why = [rec.getMessage() for rec in caplog.records if rec.getMessage().startswith("not ready: store")]
        assert 1 <= len(why) <= 2 and f":{fwd.port}/" in why[0], why  # the reason, with the host, is in the log
        fwd.set("forward")
        r = _until(url, 200, "ok", within=10)  # the audit writer heals too (its checkpoint is retried)
        assert r.status_code == 200, r.text


def test_a_hung_store_makes_the_probe_fail_fast_never_wait(
    tmp_path: Path,
    weights: tuple[Path, str],
    forwarder: tuple[Forwarder, str],
    redis_url: str,  # noqa: F811
) -> None:
    fwd, db_url = forwarder
    with running(_config(tmp_path, weights, db_url, redis_url)) as url:
        assert _ready(url).status_code == 200
        fwd.set("blackhole")  # connections accepted, never answered: PostgreSQL hung or packets dropped
        time.sleep(CACHE_SECONDS)
        for _ in range(3):
            started = time.monotonic()
            r = _ready(url)
            assert time.monotonic() - started < CHECK_SECONDS + 0.5, "the probe waited on the hung store"
            assert r.status_code == 503 and r.json()["store"] == "failing", r.text
        fwd.set("forward")
        assert _until(url, 200, "ok", within=10).status_code == 200


def test_unready_when_redis_has_nothing_listening_unless_limits_fail_open(
    tmp_path: Path,
    weights: tuple[Path, str],
    pg_engine: sa.Engine,  # noqa: F811
) -> None:
    db_url = pg_engine.url.render_as_string(hide_password=False)
    with free_socket() as nobody:  # bound, not listening: connections to it are refused
        dead_redis = f"redis://127.0.0.1:{nobody.getsockname()[1]}/0"
        with running(_config(tmp_path / "closed", weights, db_url, dead_redis)) as url:
            r = _until(url, 503, "ok", within=10)  # a loaded machine may keep the first store check past its 1 s
            assert r.status_code == 503, r.text
            assert r.json() == {"status": "unready", "broken": [], "audit_log": "ok", "store": "ok", "redis": "failing"}
        # fail_open: the operator chose to serve unlimited while Redis is down, so the replica stays in the balancer
        with running(_config(tmp_path / "open", weights, db_url, dead_redis, fail_open=True)) as url:
            r = _until(url, 200, "ok", within=10)
            assert r.status_code == 200 and r.json()["redis"] == "failing", r.text
