"""A fleet of real ``modelshield serve`` replicas behind HAProxy, for the fleet tests and ``bench/fleet.py``.

``Fleet`` starts N replicas as child processes on one PostgreSQL database (API keys and the audit log) and one
Redis (rate limits, quotas, the key-revocation feed), renders ``deploy/haproxy/haproxy.cfg`` — the documented
config — for their ports and runs ``haproxy`` in front of them. By default the database is a fresh one on the
shared server (127.0.0.1:5432), dropped afterwards, and Redis is the shared one (127.0.0.1:6379): every subject
name carries the run's tag, so its rate-limit and quota keys collide with nobody's. Pass ``db_url`` and
``redis_url`` to use servers of your own (e.g. private ones a fault test kills), ``fresh_database`` to make a
database on them. Everything is torn down by ``stop()`` (or the ``with`` block), also after a failure.

    with Fleet(tmp_path, replicas=2) as fleet:
        status, body, rid = fleet.predict()                 # through the balancer
        fleet.kill(0)                                       # kill -9 replica r1
        fleet.wait_states({"r1": "DOWN", "r2": "UP"})       # as HAProxy's health checks see them
        fleet.start_replica(0)                              # again, on the same port
        events = fleet.audit_events(); fleet.verify_audit()
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ctypes
import json
import os
import random
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
HAPROXY_TEMPLATE = ROOT / "deploy" / "haproxy" / "haproxy.cfg"
PG_SERVER = "postgresql://postgres@127.0.0.1:5432"
REDIS_URL = "redis://127.0.0.1:6379/0"
MODEL = "demo"
PREDICT = f"/v1/models/{MODEL}/predict"


def free_port() -> int:
    """A loopback port nobody listens on now, below the kernel's ephemeral range: a port the OS hands out for
    outgoing connections (to PostgreSQL, Redis, ...) could be taken again before a replica or HAProxy binds it,
    or while a killed replica is down."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    rng = random.SystemRandom()
    for _ in range(200):
        port = rng.randrange(max(1024, low - 12000), low)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free loopback port below the ephemeral range")


def _postgres_up(server: str) -> bool:
    import psycopg

    try:
        psycopg.connect(f"{server}/postgres", connect_timeout=3).close()
        return True
    except psycopg.OperationalError:
        return False


def ensure_postgres(server: str = PG_SERVER) -> None:
    """The shared PostgreSQL, started the documented way if it is down; raises (never skips) if it cannot be."""
    if _postgres_up(server):
        return
    version = sorted(p.name for p in Path("/etc/postgresql").iterdir())[-1]
    subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start"], check=False)
    deadline = time.monotonic() + 30
    while not _postgres_up(server):
        if time.monotonic() > deadline:
            raise RuntimeError(f"PostgreSQL is not reachable at {server} and did not start")
        time.sleep(0.5)


def ensure_redis(url: str = REDIS_URL) -> None:
    """The shared Redis, started the documented way if it is down; raises (never skips) if it cannot be."""
    import redis

    def up() -> bool:
        try:
            return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
        except redis.RedisError:
            return False

    if up():
        return
    Path("/var/lib/redis").mkdir(parents=True, exist_ok=True)
    Path("/var/log/redis").mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "-::1", "--port", "6379", "--save", "",
         "--appendonly", "no", "--dir", "/var/lib/redis", "--logfile", "/var/log/redis/ci.log"],
        check=False,
    )  # fmt: skip
    deadline = time.monotonic() + 10
    while not up():
        if time.monotonic() > deadline:
            raise RuntimeError(f"Redis is not reachable at {url} and did not start")
        time.sleep(0.1)


@contextlib.contextmanager
def fresh_database(server: str = PG_SERVER) -> Iterator[str]:
    """A new, empty database ``ms_fleet_<random>`` on the PostgreSQL ``server`` (URL without a database);
    yields its URL and drops it (closing any connection left) afterwards."""
    import psycopg

    name = f"ms_fleet_{secrets.token_hex(5)}"
    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{server}/{name}"
    finally:
        with contextlib.suppress(psycopg.Error), psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def render_haproxy(template: str, port: int, replicas: Mapping[str, int], stats_socket: Path | None = None) -> str:
    """``deploy/haproxy/haproxy.cfg`` for a balancer on ``port`` and one ``server`` line per replica
    (name -> port), optionally with an admin stats socket; the rest of the file is kept as it is."""
    lines: list[str] = []
    servers_at = None
    for line in template.splitlines():
        if re.match(r"\s*server\s", line):
            servers_at = len(lines) if servers_at is None else servers_at
            continue
        line = re.sub(r"^(\s*bind\s+127\.0\.0\.1:)\d+", rf"\g<1>{port}", line)
        lines.append(line)
        if stats_socket is not None and line.strip() == "global":
            lines.append(f"    stats socket {stats_socket} mode 600 level admin")
    if servers_at is None:
        raise ValueError("the HAProxy template has no server lines to replace")
    lines[servers_at:servers_at] = [f"    server {name} 127.0.0.1:{p}" for name, p in replicas.items()]
    return "\n".join(lines) + "\n"


def save_demo_weights(path: Path, model: Any = None) -> str:
    """The demo digits CNN (``model``, else trained now: seconds) saved as safetensors at ``path``; its digest."""
    from modelshield.core.loading import save_torch_model
    from modelshield.serve.runtime import file_digest

    if model is None:
        import torch

        from modelshield.core.datasets import sklearn_dataset
        from modelshield.demo import train_digits_cnn

        torch.set_num_threads(1)
        model = train_digits_cnn(sklearn_dataset("digits", "train", seed=0))
    save_torch_model(model, path)
    return file_digest(path)


def _die_with_parent() -> None:
    """In a child: SIGKILL it when the test process dies, however that happens (no replica outlives a run)."""
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Answer:
    """One request of ``Fleet.drive``: its id, status (0: no answer — connection lost or ``ANSWER_SECONDS``
    passed), when it was sent (``time.monotonic()``) and how long the answer took."""

    request_id: str
    status: int
    sent: float
    seconds: float


ANSWER_SECONDS = 15.0


async def _client(
    port: int, request: bytes, tag: str, stop: float, interval: float, offset: float, out: list[Answer]
) -> None:
    """Keep-alive predict requests on one connection until ``stop``, one every ``interval`` seconds (0: back to
    back); a lost connection is opened again."""
    reader = writer = None
    n, next_at = 0, time.monotonic() + offset
    try:
        while time.monotonic() < stop:
            if interval:
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))
                next_at += interval
            rid, n = f"{tag}-{n}", n + 1
            sent = time.monotonic()
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                assert reader is not None
                writer.write(request.replace(b"X-Request-ID: ?", f"X-Request-ID: {rid}".encode(), 1))
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), ANSWER_SECONDS)
                length = next(int(v[15:]) for v in head.split(b"\r\n") if v[:15].lower() == b"content-length:")
                await asyncio.wait_for(reader.readexactly(length), ANSWER_SECONDS)
                status = int(head[9:12])
                if b"connection: close" in head.lower():
                    writer.close()
                    writer = None
            except (OSError, TimeoutError, asyncio.IncompleteReadError, StopIteration, ValueError):
                status = 0
                if writer is not None:
                    writer.close()
                writer = None
                if not interval:
                    await asyncio.sleep(0.01)  # the balancer itself is gone: do not spin
            out.append(Answer(rid, status, sent, time.monotonic() - sent))
    finally:
        if writer is not None:
            writer.close()


@dataclass(frozen=True)
class Propagation:
    """How a revocation reached each replica: seconds from the revoke call's answer to the replica's first 401
    (an upper bound: it includes that request's round trip), and requests it still accepted before."""

    seconds: dict[str, float]
    accepted_after: dict[str, int]


@dataclass
class Replica:
    """One ``modelshield serve`` child process (``proc`` is None while it is stopped)."""

    name: str
    port: int
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


class Fleet:
    """N ``modelshield serve`` replicas on one database and one Redis, behind HAProxy (see the module docstring).

    Attributes once started: ``url`` (the balancer), ``replicas``, ``db_url``, ``redis_url``, ``key`` (a
    predictor key, subject ``predictor_subject``), ``admin_key``, ``body`` (one digits image as a predict
    body), ``public_key`` (the audit signing key's public half), ``tag`` (unique to the run).
    """

    def __init__(
        self,
        work: Path,
        replicas: int = 2,
        *,
        db_url: str | None = None,
        redis_url: str | None = REDIS_URL,
        pg_server: str = PG_SERVER,
        weights: Path | None = None,
        rps: float = 1e6,
        burst: float = 1e6,
        daily_quota: int = 10**9,
        durability: str = "fsync",
        extra_config: str = "",
        log_level: str = "warning",
        start_timeout: float = 120.0,
    ) -> None:
        self.work = Path(work)
        self.work.mkdir(parents=True, exist_ok=True)
        self.tag = secrets.token_hex(4)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.replicas = [Replica(f"r{i + 1}", free_port(), self.work / f"r{i + 1}.log") for i in range(replicas)]
        self.db_url = db_url or ""
        self.redis_url = redis_url
        self._pg_server = pg_server
        self._own_db = db_url is None
        self._weights = weights
        self._limits = (rps, burst, daily_quota)
        self._durability = durability
        self._extra = extra_config
        self._log_level = log_level
        self._timeout = start_timeout
        self._stack = contextlib.ExitStack()
        self.haproxy: subprocess.Popen[bytes] | None = None
        self.socket = self.work / "haproxy.sock"
        self.predictor_subject = f"fleet-{self.tag}-predictor"
        self.key = self.admin_key = ""
        self.body = b""
        self.public_key = self.work / "audit.pub.pem"

    # -- life cycle --------------------------------------------------------------------------------

    def __enter__(self) -> Fleet:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> Fleet:
        """Prepare the store, start every replica (in parallel), then HAProxy; returns once all are UP in it."""
        try:
            self._prepare()
            for replica in self.replicas:
                self._spawn(replica)
            for replica in self.replicas:
                self.wait_replica(replica)
            self._start_haproxy()
            self.wait_states({r.name: "UP" for r in self.replicas})
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop HAProxy and every replica (SIGTERM, then SIGKILL), drop the database if this fleet made it."""
        procs = [p for p in [self.haproxy, *(r.proc for r in self.replicas)] if p is not None]
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.haproxy = None
        for replica in self.replicas:
            replica.proc = None
        self._stack.close()

    def _prepare(self) -> None:
        from modelshield.audit.keys import generate_keypair
        from modelshield.core.datasets import sklearn_dataset
        from modelshield.serve.runtime import file_digest

        if self._own_db:
            ensure_postgres(self._pg_server)
            self.db_url = self._stack.enter_context(fresh_database(self._pg_server))
        if self.redis_url == REDIS_URL:
            ensure_redis(REDIS_URL)
        weights = self._weights or self.work / "digits.safetensors"
        digest = file_digest(weights) if weights.exists() else save_demo_weights(weights)
        pepper = self.work / "pepper"
        fd = os.open(pepper, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(base64.b64encode(secrets.token_bytes(32)).decode())
        self._pepper = pepper
        generate_keypair(self.work / "audit.pem", self.public_key)
        self.key = self.create_key(self.predictor_subject)
        self.admin_key = self.create_key(f"fleet-{self.tag}-admin", roles=("admin",), clearance="restricted")
        self.body = json.dumps({"inputs": sklearn_dataset("digits", "test", seed=0).x[:1].tolist()}).encode()
        rps, burst, quota = self._limits
        redis = f'redis_url = "{self.redis_url}"\n' if self.redis_url else ""
        self.config = self.work / "serve.toml"
        self.config.write_text(
            f'[models.{MODEL}]\npath = "{weights}"\ndigest = "{digest}"\n'
            'arch = "modelshield.demo:DigitsCNN"\ninput_shape = [1, 8, 8]\n\n'
            f'[server]\nstore_url = "{self.db_url}"\n\n[auth]\napi_key_pepper_file = "{pepper}"\n\n'
            f'[audit]\ndb_url = "{self.db_url}"\nsigning_key_file = "{self.work / "audit.pem"}"\n'
            f'public_key_file = "{self.public_key}"\ndurability = "{self._durability}"\n\n'
            f'[rate_limits]\n{redis}redis_prefix = "fleet-{self.tag}"\n'
            f"per_identity_rps = {rps}\nper_identity_burst = {burst}\n"
            'cost = "requests"\n'  # one token a request: the quota test sends 200-sample batches under a burst of 20
            f"per_model_rps = 1e9\nper_model_burst = 1e9\ndaily_quota = {quota}\n\n"
            f'[logging]\nlevel = "{self._log_level}"\n' + self._extra
        )

    def create_key(self, subject: str, roles: tuple[str, ...] = ("predictor",), clearance: str = "internal") -> str:
        """A new API key in the fleet's store (every replica accepts it); the plaintext."""
        return self.create_keys([subject], roles, clearance)[0]

    def create_keys(
        self, subjects: list[str], roles: tuple[str, ...] = ("predictor",), clearance: str = "internal"
    ) -> list[str]:
        """One new key per subject, through one store connection; the plaintexts."""
        from modelshield.serve.apikeys import ApiKeyStore

        store = ApiKeyStore.open(self.db_url, pepper_file=self._pepper)
        try:
            return [store.create(s, list(roles), attributes={"clearance": clearance}).plaintext for s in subjects]
        finally:
            store.close()

    def _spawn(self, replica: Replica) -> None:
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
        env.pop("MODELSHIELD_DB_URL", None)
        env.pop("MODELSHIELD_REDIS_URL", None)
        with replica.log.open("ab") as log:
            replica.proc = subprocess.Popen(
                [sys.executable, "-m", "modelshield", "serve", "--config", str(self.config),
                 "--port", str(replica.port)],
                cwd=ROOT, stdout=log, stderr=log, env=env, start_new_session=True, preexec_fn=_die_with_parent,
            )  # fmt: skip

    def wait_replica(self, replica: Replica) -> None:
        """Until ``replica`` answers /readyz with 200; raises with its log's tail if it exits or times out."""
        deadline = time.monotonic() + self._timeout
        while True:
            proc = replica.proc
            if proc is None or proc.poll() is not None:
                raise RuntimeError(f"replica {replica.name} exited: {self.log_tail(replica)}")
            try:
                if httpx.get(replica.url + "/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"replica {replica.name} not ready in {self._timeout:.0f} s: {self.log_tail(replica)}"
                )
            time.sleep(0.1)

    def _start_haproxy(self) -> None:
        ports = {r.name: r.port for r in self.replicas}
        cfg = self.work / "haproxy.cfg"
        cfg.write_text(render_haproxy(HAPROXY_TEMPLATE.read_text(), self.port, ports, self.socket))
        check = subprocess.run(["haproxy", "-c", "-q", "-f", str(cfg)], capture_output=True, text=True)
        if check.returncode != 0:
            raise RuntimeError(f"haproxy -c failed: {check.stderr.strip()}")
        with (self.work / "haproxy.log").open("ab") as log:
            self.haproxy = subprocess.Popen(
                ["haproxy", "-db", "-f", str(cfg)],
                stdout=log,
                stderr=log,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )

    # -- replicas ----------------------------------------------------------------------------------

    def kill(self, index: int, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` (default: kill -9) to replica ``index`` and reap it."""
        replica = self.replicas[index]
        if replica.proc is not None:
            replica.proc.send_signal(sig)
            replica.proc.wait(timeout=30)
            replica.proc = None

    def start_replica(self, index: int) -> None:
        """(Re)start replica ``index`` on its port and wait until it is ready (HAProxy's checks then bring it UP)."""
        replica = self.replicas[index]
        if replica.proc is None or replica.proc.poll() is not None:
            self._spawn(replica)
        self.wait_replica(replica)

    def log_tail(self, replica: Replica, chars: int = 2000) -> str:
        return replica.log.read_text(errors="replace")[-chars:] if replica.log.exists() else ""

    def cpu_seconds(self) -> dict[str, float]:
        """CPU seconds used so far by each running replica (and ``haproxy``)."""
        out = {r.name: cpu_seconds(r.proc.pid) for r in self.replicas if r.proc is not None}
        if self.haproxy is not None:
            out["haproxy"] = cpu_seconds(self.haproxy.pid)
        return out

    def served(self) -> dict[str, int]:
        """Predict requests each running replica has answered (any status), from its /metrics."""
        out = {}
        pattern = re.compile(r'^modelshield_requests_total\{[^}]*route="predict"[^}]*\} ([0-9.e+]+)$', re.M)
        for r in self.replicas:
            if r.proc is not None:
                text = httpx.get(r.url + "/metrics", timeout=5).text
                out[r.name] = int(sum(float(v) for v in pattern.findall(text)))
        return out

    # -- the balancer ------------------------------------------------------------------------------

    def haproxy_command(self, command: str) -> str:
        """One command on HAProxy's admin socket (e.g. ``show stat``, ``disable server replicas/r1``)."""
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(5)
            s.connect(str(self.socket))
            s.sendall(command.encode() + b"\n")
            chunks = []
            while chunk := s.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def states(self) -> dict[str, str]:
        """Each replica's state as HAProxy's health checks see it: UP, DOWN, ``UP 1/2`` (going down), ..."""
        rows = self.haproxy_command("show stat").lstrip("# ").splitlines()
        header = rows[0].split(",")
        out = {}
        for row in rows[1:]:
            cells = dict(zip(header, row.split(","), strict=False))
            if cells.get("pxname") == "replicas" and cells.get("svname") not in ("BACKEND", "FRONTEND"):
                out[cells["svname"]] = cells["status"]
        return out

    def wait_states(self, expected: Mapping[str, str], timeout: float = 30.0) -> float:
        """Until HAProxy shows every named replica in its expected state; returns the seconds it took."""
        started = time.monotonic()
        while True:
            if self.haproxy is None or self.haproxy.poll() is not None:
                raise RuntimeError(f"haproxy is not running: {(self.work / 'haproxy.log').read_text()[-2000:]}")
            with contextlib.suppress(OSError):
                now = self.states()
                if all(now.get(name) == state for name, state in expected.items()):
                    return time.monotonic() - started
            if time.monotonic() - started > timeout:
                raise TimeoutError(f"HAProxy states {self.states()} != {dict(expected)} after {timeout:.0f} s")
            time.sleep(0.1)

    # -- requests ----------------------------------------------------------------------------------

    def headers(self, key: str | None = None, request_id: str | None = None) -> dict[str, str]:
        """Headers of a predict request: the key (default: the fleet's predictor key) and a request id."""
        return {
            "Authorization": f"Bearer {key or self.key}",
            "Content-Type": "application/json",
            "X-Request-ID": request_id or secrets.token_hex(16),
        }

    def predict(self, key: str | None = None, url: str | None = None) -> tuple[int, dict[str, Any], str]:
        """One predict request through the balancer (or ``url``, e.g. a replica's): status, JSON body ({} when the
        answer is not JSON, e.g. HAProxy's own 503 with no replica up), request id."""
        headers = self.headers(key)
        r = httpx.post((url or self.url) + PREDICT, content=self.body, headers=headers, timeout=15)
        json_body = r.headers.get("content-type", "").startswith("application/json")
        return r.status_code, r.json() if json_body else {}, headers["X-Request-ID"]

    def request_bytes(self, key: str | None = None, port: int | None = None) -> bytes:
        """A raw HTTP/1.1 predict request (keep-alive) whose ``X-Request-ID: ?`` ``drive`` fills in."""
        head = (
            f"POST {PREDICT} HTTP/1.1\r\nHost: 127.0.0.1:{port or self.port}\r\n"
            f"Authorization: Bearer {key or self.key}\r\nContent-Type: application/json\r\n"
            f"X-Request-ID: ?\r\nContent-Length: {len(self.body)}\r\n\r\n"
        )
        return head.encode() + self.body

    def drive(
        self,
        seconds: float,
        *,
        concurrency: int = 8,
        rate: float | None = None,
        keys: list[str] | None = None,
        port: int | None = None,
    ) -> list[Answer]:
        """Predict load through the balancer (or ``port``) for ``seconds`` from ``concurrency`` keep-alive
        connections, back to back or paced at ``rate`` requests/s in all; connection ``i`` uses
        ``keys[i % len(keys)]`` (default: the fleet's key). Every request has a unique X-Request-ID."""
        keys = keys or [self.key]
        interval = concurrency / rate if rate else 0.0

        async def run() -> list[Answer]:
            out: list[Answer] = []
            stop = time.monotonic() + seconds
            await asyncio.gather(
                *(
                    _client(
                        port or self.port,
                        self.request_bytes(keys[i % len(keys)], port),
                        f"{self.tag}-{secrets.token_hex(3)}-{i}",
                        stop,
                        interval,
                        interval * i / concurrency,
                        out,
                    )
                    for i in range(concurrency)
                )
            )
            return out

        return asyncio.run(run())

    def revoke_and_time(self, key: str, via: int = 0, timeout: float = 10.0) -> Propagation:
        """Revoke ``key`` through replica ``via``'s admin API, then ask every replica in turn until each refuses
        it (401). Raises ``TimeoutError`` if a replica still accepts it after ``timeout`` seconds."""
        answer = httpx.post(
            self.replicas[via].url + "/v1/admin/keys/revoke",
            json={"key_id": key.split("_")[1]},
            headers={"Authorization": f"Bearer {self.admin_key}"},
            timeout=10,
        )
        answer.raise_for_status()
        revoked_at = time.monotonic()
        pending = {r.name: r.url for r in self.replicas if r.proc is not None}
        out = Propagation({}, dict.fromkeys(pending, 0))
        with httpx.Client(timeout=10) as client:
            while pending:
                for name, url in list(pending.items()):
                    status = client.post(url + PREDICT, content=self.body, headers=self.headers(key)).status_code
                    if status == 401:
                        out.seconds[name] = time.monotonic() - revoked_at
                        del pending[name]
                    else:
                        out.accepted_after[name] += 1
                if pending and time.monotonic() - revoked_at > timeout:
                    raise TimeoutError(f"{', '.join(pending)} still accept a key revoked {timeout:g} s ago")
        return out

    # -- the audit log -----------------------------------------------------------------------------

    def audit_events(self) -> list[dict[str, Any]]:
        """Every audit record's event, in chain order (by sequence number)."""
        import psycopg

        with psycopg.connect(self.db_url) as conn:
            rows = conn.execute("SELECT event FROM audit_records ORDER BY seq").fetchall()
        return [json.loads(event) for (event,) in rows]

    def verify_audit(self) -> subprocess.CompletedProcess[str]:
        """``modelshield audit verify`` on the fleet's database, as an operator runs it."""
        return subprocess.run(
            [sys.executable, "-m", "modelshield", "audit", "verify", "--db", self.db_url,
             "--public-key", str(self.public_key)],
            cwd=ROOT, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
