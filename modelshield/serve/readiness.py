"""What ``/readyz`` reports: is this replica able to answer right now, dependency by dependency.

A replica that cannot reach its shared store or its Redis would answer every request with 503; the
readiness probe takes it out of the load balancer instead. Each check is bounded (``CHECK_SECONDS``)
and its result is reused for ``CACHE_SECONDS``, so probes (from the kubelet, a balancer, or anyone:
``/readyz`` is unauthenticated) never cost more than one database connection and one Redis round
trip per second. Probes are told only ``ok`` or ``failing`` per component; why is in the gateway log.

- ``models``: every primary model version loaded and intact (names of broken ones in ``broken``).
- ``audit_log``: the writer is committing (``AuditLog.problem()``).
- ``store``: each database the gateway uses (the audit log's, the API keys') accepts a new connection and
  answers ``SELECT 1``. A new connection, not a pooled one: it checks what a restarted replica would need
  (DNS, TLS, credentials, ``max_connections``), and a busy pool cannot make the probe wait.
- ``redis``: Redis answers ``PING``, when the gateway uses one. With ``rate_limits.fail_open`` a Redis
  outage is reported but does not make the replica unready (it serves unlimited, as configured).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from modelshield.core.storage import safe_url

if TYPE_CHECKING:
    from modelshield.serve.gateway import Gateway

log = logging.getLogger("modelshield.serve")

CHECK_SECONDS = 1.0  # the bound on one round of store and Redis checks (the kubelet's probe timeout must exceed it)
CACHE_SECONDS = 1.0  # a result is reused this long: probes cannot hammer the database
LOG_EVERY_SECONDS = 5.0  # one log line per failing component per 5 s, however often /readyz is asked


class Readiness:
    """The gateway's dependencies, checked off the event loop, bounded in time, and cached."""

    def __init__(
        self, gateway: Gateway, *, check_seconds: float = CHECK_SECONDS, cache_seconds: float = CACHE_SECONDS
    ) -> None:
        self.gateway = gateway
        self.check_seconds = check_seconds
        self.cache_seconds = cache_seconds
        self._engines = [_probe_engine(url, check_seconds) for url in _database_urls(gateway)]
        self._redis = _probe_redis(gateway.config.redis_url(), check_seconds)
        self._optional = {"redis"} if gateway.config.rate_limits.fail_open else set()
        self._task: asyncio.Future[dict[str, str]] | None = None
        self._started = 0.0
        self._checked_at = -float("inf")
        self._last: dict[str, str] = {}
        self._logged: dict[str, float] = {}

    async def report(self) -> tuple[bool, dict[str, Any]]:
        """(ready?, the body for anonymous probes: ``status``, ``broken`` and ``ok``/``failing`` per component)."""
        # a quarantine is a fleet-wide decision, not this replica's fault: taking every replica out of the balancer
        # for it would take every other model down with the quarantined one
        broken = [r.name for r in self.gateway.routers.values() if not r.primary.healthy and not r.primary.quarantined]
        audit = self.gateway.audit_log
        audit_problem = audit.problem() if audit is not None else None
        if audit_problem is not None:
            self._log("audit_log", "the audit log is failing: %s", audit_problem)
        components = {"audit_log": "failing" if audit_problem else "ok", **await self._dependencies()}
        ready = not broken and all(v == "ok" for k, v in components.items() if k not in self._optional)
        return ready, {"status": "ready" if ready else "unready", "broken": broken, **components}

    async def _dependencies(self) -> dict[str, str]:
        """The store and Redis results: fresh at most every ``cache_seconds``, never awaited past ``check_seconds``."""
        now = time.monotonic()
        if self._task is None and now - self._checked_at >= self.cache_seconds:
            self._task = asyncio.ensure_future(asyncio.to_thread(self._check))
            self._started = now
        task = self._task
        if task is None:
            return self._last
        try:
            self._last = await asyncio.wait_for(
                asyncio.shield(task), max(0.0, self._started + self.check_seconds - now)
            )
        except TimeoutError:  # still hung: failing until it returns (only one check at a time is ever in flight)
            self._log("checks", "the store and Redis checks have not returned after %.1f s", now - self._started)
            return {name: "failing" for name in self._names()}
        if self._task is task:
            self._task, self._checked_at = None, time.monotonic()
        return self._last

    def _log(self, component: str, message: str, *args: object) -> None:
        """Why a component fails, to the gateway log; at most every ``LOG_EVERY_SECONDS`` (``/readyz`` is open)."""
        now = time.monotonic()
        if now - self._logged.get(component, -float("inf")) >= LOG_EVERY_SECONDS:
            self._logged[component] = now
            log.error("not ready: " + message, *args)

    def _names(self) -> list[str]:
        return (["store"] if self._engines else []) + (["redis"] if self._redis is not None else [])

    def _check(self) -> dict[str, str]:
        """Run in a worker thread: a new connection and ``SELECT 1`` per database, ``PING`` to Redis."""
        out: dict[str, str] = {}
        if self._engines:
            out["store"] = "ok"
            for engine in self._engines:
                try:
                    with engine.connect() as conn:
                        conn.execute(sa.text("SELECT 1"))
                except Exception as exc:  # any failure to answer is "failing"; the reason goes to the log only
                    self._log("store", "store %s: %s", safe_url(str(engine.url)), _one_line(exc))
                    out["store"] = "failing"
        if self._redis is not None:
            try:
                self._redis.ping()
                out["redis"] = "ok"
            except Exception as exc:
                self._log("redis", "Redis does not answer PING: %s", _one_line(exc))
                out["redis"] = "failing"
        return out


def _database_urls(gateway: Gateway) -> list[sa.URL]:
    """The distinct databases the gateway opened: the audit log's and the store's (API keys; the registry shares
    ``store_url`` with them), as their engines see them."""
    engines: list[sa.Engine] = []
    if gateway.audit_log is not None:
        engines.append(gateway.audit_log.engine)
    if gateway.api_keys is not None:
        engines.append(gateway.api_keys.engine)
    urls: dict[str, sa.URL] = {}
    for engine in engines:
        urls.setdefault(engine.url.render_as_string(hide_password=False), engine.url)
    return list(urls.values())


def _probe_engine(url: sa.URL, seconds: float) -> sa.Engine:
    """An engine that opens a new connection for every check, giving up on connecting after ``seconds``."""
    if url.get_backend_name() == "postgresql":
        # libpq's connect_timeout is whole seconds, 2 at least; asyncio's wait bounds the probe to ``seconds`` anyway
        return sa.create_engine(url, poolclass=NullPool, connect_args={"connect_timeout": max(2, round(seconds))})
    return sa.create_engine(url, poolclass=NullPool, connect_args={"timeout": seconds})


def _probe_redis(url: str | None, seconds: float) -> Any:
    """A Redis client with short timeouts, or None when the gateway uses no Redis."""
    if url is None:
        return None
    import redis

    return redis.Redis.from_url(url, socket_timeout=seconds, socket_connect_timeout=seconds)


def _one_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc)
    return f"{type(exc).__name__}: {' '.join(text.split())[:300]}"
