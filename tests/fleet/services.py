"""PostgreSQL and Redis servers of a test's own, as child processes it may kill and restart.

The machine's shared servers (5432, 6379) are used by others and must never be stopped; the fault tests stop
these instead. Each server is a direct child of the test process that dies with it (``PR_SET_PDEATHSIG``), so
even a test run killed with ``kill -9`` leaves no server behind; the fixtures stop them in ``finally``.

PostgreSQL refuses to run as root, so ``initdb`` and ``postgres`` run as the ``postgres`` user, with the data
folder and the unix socket in a temporary folder that user owns.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
import redis

PG_BIN = Path("/usr/lib/postgresql/15/bin")
START_SECONDS = 60.0
_PR_SET_PDEATHSIG = 1


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:
    """In the child, after it took its user: SIGKILL it when the test process dies, however that happens."""
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _wait(ready: Callable[[], bool], process: subprocess.Popen[bytes], what: str, log: Path) -> None:
    deadline = time.monotonic() + START_SECONDS
    while not ready():
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}: {log.read_text(errors='replace')[-2000:]}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not answer within {START_SECONDS:g} s")
        time.sleep(0.05)


class _Child:
    """A server run as a child process: ``start``, ``kill`` (SIGKILL), ``stop`` (its clean shutdown), ``restart``."""

    name = "server"
    stop_signal = signal.SIGTERM

    def __init__(self, root: Path, port: int) -> None:
        self.root, self.port = root, port
        self.log = root / f"{self.name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def _command(self) -> list[str]:
        raise NotImplementedError

    def _user(self) -> str | None:
        return None

    def answers(self) -> bool:
        raise NotImplementedError

    def start(self) -> None:
        """Start the server and return once it answers queries."""
        if self.process is not None and self.process.poll() is None:
            raise RuntimeError(f"{self.name} on port {self.port} is already running")
        user = self._user()
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                self._command(),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                user=user,
                group=pwd.getpwnam(user).pw_gid if user else None,
                extra_groups=[] if user else None,
                preexec_fn=_die_with_parent,
            )
        _wait(self.answers, self.process, f"{self.name} on port {self.port}", self.log)

    def _end(self, sig: signal.Signals, seconds: float) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.send_signal(sig)
        try:
            process.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)

    def kill(self) -> None:
        """``kill -9``: the server dies at once, without a word to its clients."""
        self._end(signal.SIGKILL, 10)

    def stop(self, seconds: float = 30.0) -> None:
        """The server's own clean shutdown (SIGKILL if it takes longer than ``seconds``)."""
        self._end(self.stop_signal, seconds)

    def _pids(self) -> list[int]:
        """The server process and its children (PostgreSQL's backends and workers)."""
        process = self.process
        if process is None or process.poll() is not None:
            return []
        children = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()
        return [process.pid, *map(int, children)]

    def pause(self) -> None:
        """SIGSTOP the server and its children: a hung server — connections stay open, nothing answers."""
        for pid in self._pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT what ``pause`` stopped."""
        for pid in self._pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)

    def restart(self, *, crash: bool = False) -> float:
        """Stop (or, with ``crash``, kill) the server and start it again on the same port; seconds it was down."""
        down = time.monotonic()
        self.kill() if crash else self.stop()
        self.start()
        return time.monotonic() - down


class Postgres(_Child):
    """A PostgreSQL 15 cluster of our own: trust auth, 127.0.0.1 and a unix socket in its folder."""

    name = "postgres"
    stop_signal = signal.SIGINT  # "fast" shutdown: clients are disconnected, the server checkpoints and exits

    def __init__(self, root: Path, port: int) -> None:
        super().__init__(root, port)
        self.data = root / "data"
        self.url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
        subprocess.run(
            [PG_BIN / "initdb", "-D", self.data, "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync"],
            check=True,
            capture_output=True,
            timeout=120,
            user="postgres",
        )

    def _user(self) -> str:
        return "postgres"

    def _command(self) -> list[str]:
        settings = {
            "port": self.port,
            "listen_addresses": "127.0.0.1",
            "unix_socket_directories": self.root,
            "shared_buffers": "32MB",
            "max_connections": 200,
            "fsync": "on",
            "logging_collector": "off",
        }
        return [str(PG_BIN / "postgres"), "-D", str(self.data), *(f"-c{k}={v}" for k, v in settings.items())]

    def answers(self) -> bool:
        try:
            psycopg.connect(self.url, connect_timeout=2).close()
        except psycopg.OperationalError:
            return False
        return True

    def kill(self) -> None:
        """``kill -9`` of the postmaster and every backend it had (they would otherwise linger, holding the shared
        memory that stops the next start)."""
        pids = self._pids()
        super().kill()
        for pid in pids[1:]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def crash(self) -> None:
        """SIGQUIT to the postmaster (``pg_ctl stop -m immediate``): every process quits at once, no checkpoint;
        the next start replays the WAL. Unlike SIGKILL of the postmaster alone, no orphaned backend is left
        holding the shared memory that would stop the next start."""
        self._end(signal.SIGQUIT, 30)


class Redis(_Child):
    """A Redis server of our own that keeps nothing on disk (as the machine's own)."""

    name = "redis"

    def __init__(self, root: Path, port: int) -> None:
        super().__init__(root, port)
        self.url = f"redis://127.0.0.1:{port}/0"

    def _command(self) -> list[str]:
        return [
            "redis-server",
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--dir",
            str(self.root),
        ]

    def answers(self) -> bool:
        client = redis.Redis(port=self.port, socket_timeout=2, socket_connect_timeout=2)
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()


def _require() -> None:
    if os.geteuid() != 0 or not (PG_BIN / "initdb").exists() or shutil.which("redis-server") is None:
        raise RuntimeError("private servers need root (to run PostgreSQL as postgres), PostgreSQL 15 and redis-server")


@contextlib.contextmanager
def private_postgres() -> Iterator[Postgres]:
    """A fresh PostgreSQL cluster, stopped and deleted on exit."""
    _require()
    root = Path(tempfile.mkdtemp(prefix="ms-fleet-pg-"))  # not under pytest's tmp_path: postgres must reach it
    shutil.chown(root, "postgres", "postgres")
    try:
        server = Postgres(root, free_port())
        server.start()
        try:
            yield server
        finally:
            server.crash()
    finally:
        shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def private_redis() -> Iterator[Redis]:
    """A fresh Redis server, killed and its folder deleted on exit."""
    _require()
    root = Path(tempfile.mkdtemp(prefix="ms-fleet-redis-"))
    try:
        server = Redis(root, free_port())
        server.start()
        try:
            yield server
        finally:
            server.kill()
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def pg_server() -> Iterator[Postgres]:
    """A private PostgreSQL for a test module (``initdb`` costs a second or more: once per module)."""
    with private_postgres() as server:
        yield server


@pytest.fixture(scope="module")
def redis_server() -> Iterator[Redis]:
    """A private Redis for a test module."""
    with private_redis() as server:
        yield server
