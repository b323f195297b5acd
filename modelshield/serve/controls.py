"""Fleet-wide gateway controls: what an operator changes on one replica applies on every replica and worker.

The state lives in the shared store (SQLite by default, PostgreSQL for a fleet). Quarantined versions, rate-limit
overrides (with their expiry) and the guard's strict mode are rows of ``gateway_controls``; which version serves
is the registry's pin (else its production version), read from the registry, not copied. Every change bumps the
store's serving generation (``core.generation``) in its own transaction. Each worker of each replica

- applies the whole state at start-up, before it serves: a replica started later sees every earlier change;
- hears of a change at once through Redis when Redis is configured (``RedisFeed`` on ``<prefix>:controls``; the
  message is the new generation);
- polls the generation every ``server.control_poll_seconds`` (2 s by default): without Redis, or while Redis is
  lost, a change applies within that bound (plus the time to load a model version, for a pin).

Applying is idempotent — the state is read whole and the live objects are made to match it — so a missed or
repeated message costs nothing. Each applied change is logged with its generation, and each worker records the
generation it has applied in ``gateway_replicas``, which ``GET /v1/admin/controls`` lists: one look tells whether
the fleet agrees. A gateway that opens no store at all (audit, keys and registry all off) keeps its controls in
this process (``MemoryControls``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import sqlalchemy as sa

from modelshield.core import generation
from modelshield.core.errors import InputError
from modelshield.core.storage import ensure_schema, open_engine, write_transaction
from modelshield.serve.ratelimit import LocalTokenBucket, RateLimiter, enforce

if TYPE_CHECKING:
    from modelshield.registry import ModelVersion
    from modelshield.serve.config import ModelRoute
    from modelshield.serve.feed import RedisFeed
    from modelshield.serve.gateway import Gateway
    from modelshield.serve.guarding import GatewayGuard
    from modelshield.serve.identity import Identity
    from modelshield.serve.runtime import LoadedModel

log = logging.getLogger("modelshield.serve")

KINDS = ("quarantine", "limit", "guard")
HEARTBEAT_SECONDS = 30.0
REPLICA_SHOWN_SECONDS = 600.0
_LOCK = "modelshield-controls"

metadata = sa.MetaData()
controls_table = sa.Table(
    "gateway_controls",
    metadata,
    sa.Column("kind", sa.String(16), primary_key=True),  # quarantine | limit | guard
    sa.Column("key", sa.String(200), primary_key=True),  # route:version | subject | route
    sa.Column("value", sa.Text, nullable=False),  # JSON object
    sa.Column("expires_at", sa.Float),  # wall clock (time.time()); None: until changed
    sa.Column("generation", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)
replicas_table = sa.Table(
    "gateway_replicas",
    metadata,
    sa.Column("replica", sa.String(200), primary_key=True),  # host:pid:tag of one worker
    sa.Column("generation", sa.BigInteger, nullable=False),
    sa.Column("applied_at", sa.Float, nullable=False),
    sa.Column("seen_at", sa.Float, nullable=False),
)


@dataclass(frozen=True)
class Control:
    """One control in force: what it is, for whom, until when, and the generation that set it."""

    kind: str
    key: str
    value: Mapping[str, Any]
    expires_at: float | None
    generation: int


@dataclass(frozen=True)
class Snapshot:
    """The controls as of ``generation`` (read after it: a newer row only causes one more, harmless, apply)."""

    generation: int
    controls: tuple[Control, ...]

    def of(self, kind: str, now: float | None = None) -> dict[str, Control]:
        """The unexpired controls of one kind, by key."""
        now = time.time() if now is None else now
        return {c.key: c for c in self.controls if c.kind == kind and (c.expires_at is None or c.expires_at > now)}


class ControlStore(Protocol):
    """Where the controls live: the shared database (``StoreControls``) or this process (``MemoryControls``)."""

    scope: str

    def put(self, kind: str, rows: Mapping[str, Mapping[str, Any]], expires_at: float | None = None) -> int:
        """Set controls (by key) in one change; returns its generation."""
        ...

    def drop(self, kind: str, keys: Iterable[str]) -> int:
        """Remove controls; returns the generation that holds the result (a new one if anything was removed)."""
        ...

    def generation(self) -> int: ...

    def snapshot(self) -> Snapshot: ...

    def heartbeat(self, replica: str, applied: int, applied_at: float) -> None: ...

    def replicas(self) -> list[dict[str, Any]]: ...

    def close(self) -> None: ...


class StoreControls:
    """Controls in the shared store; every change bumps the serving generation in its transaction."""

    scope = "fleet"

    def __init__(self, engine: sa.Engine) -> None:
        ensure_schema(engine, "gateway_controls", metadata, 1)
        generation.ensure(engine)
        self.engine = engine

    @classmethod
    def open(cls, url: str | None) -> StoreControls:
        engine = open_engine(url)
        try:
            return cls(engine)
        except BaseException:
            engine.dispose()
            raise

    def put(self, kind: str, rows: Mapping[str, Mapping[str, Any]], expires_at: float | None = None) -> int:
        t = controls_table.c
        now = time.time()
        with write_transaction(self.engine, _LOCK) as conn:
            gen = generation.bump(conn)
            conn.execute(controls_table.delete().where(t.expires_at.is_not(None), t.expires_at <= now))
            for key, value in rows.items():
                conn.execute(controls_table.delete().where(t.kind == kind, t.key == key))
                conn.execute(
                    controls_table.insert().values(
                        kind=kind,
                        key=key,
                        value=json.dumps(dict(value), sort_keys=True),
                        expires_at=expires_at,
                        generation=gen,
                        updated_at=now,
                    )
                )
        return gen

    def drop(self, kind: str, keys: Iterable[str]) -> int:
        t = controls_table.c
        with write_transaction(self.engine, _LOCK) as conn:
            removed = conn.execute(controls_table.delete().where(t.kind == kind, t.key.in_(list(keys)))).rowcount
            return generation.bump(conn) if removed else generation.read(conn)

    def generation(self) -> int:
        return generation.current(self.engine)

    def snapshot(self) -> Snapshot:
        with self.engine.connect() as conn:
            gen = generation.read(conn)  # first: rows read after it are as new or newer
            rows = conn.execute(sa.select(controls_table)).all()
        controls = tuple(Control(r.kind, r.key, json.loads(r.value), r.expires_at, int(r.generation)) for r in rows)
        return Snapshot(gen, controls)

    def heartbeat(self, replica: str, applied: int, applied_at: float) -> None:
        t = replicas_table
        values = {"generation": applied, "applied_at": applied_at, "seen_at": time.time()}
        with self.engine.begin() as conn:
            if conn.execute(t.update().where(t.c.replica == replica).values(**values)).rowcount == 0:
                conn.execute(t.insert().values(replica=replica, **values))

    def replicas(self) -> list[dict[str, Any]]:
        t = replicas_table
        now = time.time()
        query = sa.select(t).where(t.c.seen_at > now - REPLICA_SHOWN_SECONDS).order_by(t.c.replica)
        with self.engine.connect() as conn:
            return [
                {
                    "replica": r.replica,
                    "generation": int(r.generation),
                    "applied_s_ago": round(now - r.applied_at, 1),
                    "seen_s_ago": round(now - r.seen_at, 1),
                }
                for r in conn.execute(query)
            ]

    def close(self) -> None:
        self.engine.dispose()


class MemoryControls:
    """Controls of this process only, for a gateway that opens no store."""

    scope = "process"

    def __init__(self) -> None:
        self._rows: dict[tuple[str, str], Control] = {}
        self._generation = 0
        self._lock = threading.Lock()
        self._replica: dict[str, Any] = {}

    def put(self, kind: str, rows: Mapping[str, Mapping[str, Any]], expires_at: float | None = None) -> int:
        with self._lock:
            self._generation += 1
            for key, value in rows.items():
                self._rows[kind, key] = Control(kind, key, dict(value), expires_at, self._generation)
            return self._generation

    def drop(self, kind: str, keys: Iterable[str]) -> int:
        with self._lock:
            removed = [self._rows.pop((kind, key), None) for key in keys]
            if any(r is not None for r in removed):
                self._generation += 1
            return self._generation

    def generation(self) -> int:
        return self._generation

    def snapshot(self) -> Snapshot:
        with self._lock:
            return Snapshot(self._generation, tuple(self._rows.values()))

    def heartbeat(self, replica: str, applied: int, applied_at: float) -> None:
        ago = round(time.time() - applied_at, 1)
        self._replica = {"replica": replica, "generation": applied, "applied_s_ago": ago, "seen_s_ago": 0.0}

    def replicas(self) -> list[dict[str, Any]]:
        return [self._replica] if self._replica else []

    def close(self) -> None:
        pass


def serving_version(route: ModelRoute, versions: list[ModelVersion]) -> int | None:
    """The registry version a route serves: the registry's pin (an operator's decision, on every replica), unless
    the config pins a digest; else the config's version; else the production version. None: none of them."""
    pinned = next((mv.version for mv in versions if mv.pinned), None)
    if pinned is not None and route.digest is None:
        return pinned
    if route.version is not None:
        return route.version
    production = [mv.version for mv in versions if mv.status == "production" and mv.canary_percent is None]
    return max(production) if production else None


@dataclass
class LimitOverride:
    """A tighter bucket for one identity, on top of the configured limits, until ``expires_at`` (wall clock)."""

    bucket: RateLimiter
    rps: float
    burst: float
    expires_at: float
    generation: int


@dataclass
class _GuardState:
    normal: tuple[Any, float | None, float | None]
    mode: str = "normal"
    generation: int | None = None


@dataclass
class FleetControls:
    """Applies the stored controls to one worker's live gateway, and keeps applying them as they change."""

    g: Gateway
    store: ControlStore
    poll_seconds: float = 2.0
    feed: RedisFeed | None = None
    guards: dict[str, GatewayGuard] = field(default_factory=dict)
    overrides: dict[str, LimitOverride] = field(default_factory=dict)
    applied: int = -1
    applied_at: float = 0.0
    #: host:pid of this worker, and a tag telling apart two gateways in one process
    replica: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(2)}")
    #: versions loaded (and checked) by an admin call on this worker, for the next apply to put in service
    ready: dict[tuple[str, str], LoadedModel] = field(default_factory=dict)
    #: why the last apply could not serve what the store says, per model (cleared when it can)
    errors: dict[str, str] = field(default_factory=dict)
    _guards: dict[str, _GuardState] = field(init=False, default_factory=dict)
    _lock: threading.Lock = field(init=False, default_factory=threading.Lock)
    _heartbeat_at: float = field(init=False, default=0.0)

    def bind(self, guards: dict[str, GatewayGuard]) -> None:
        """Take the guards built for the models and apply the stored state: done once, before serving."""
        self.guards = guards
        self._guards = {
            name: _GuardState((gg.guard.fallback, gg.guard.threshold, gg.guard.min_confidence))
            for name, gg in guards.items()
        }
        self.sync()

    # -- applying ----------------------------------------------------------------------------------------------

    def sync(self) -> int:
        """Apply the stored state if its generation moved; returns the generation applied (blocking: a thread)."""
        with self._lock:
            gen = self.store.generation()
            if gen != self.applied:
                snap = self.store.snapshot()
                for change in self._apply(snap):
                    log.warning("fleet control generation %d: %s", snap.generation, change)
                self.applied, self.applied_at = snap.generation, time.time()
                log.info("fleet controls: generation %d applied by %s", self.applied, self.replica)
                self._heartbeat_at = 0.0
            if time.monotonic() - self._heartbeat_at >= HEARTBEAT_SECONDS:
                self.store.heartbeat(self.replica, self.applied, self.applied_at)
                self._heartbeat_at = time.monotonic()
            return self.applied

    def announce(self, gen: int) -> None:
        """Tell the other replicas now (they would also find it at their next poll)."""
        if self.feed is not None:
            self.feed.publish(str(gen))

    def _apply(self, snap: Snapshot) -> list[str]:
        return [
            *self._apply_versions(),
            *self._apply_quarantines(snap.of("quarantine")),
            *self._apply_limits(snap.of("limit")),
            *self._apply_guards(snap.of("guard")),
        ]

    def _apply_versions(self) -> list[str]:
        """Serve what the registry says each registry route serves (pins and promotions, canaries included)."""
        registry, changes = self.g.registry, list[str]()
        if registry is None:
            return changes
        for name, router in self.g.routers.items():
            route = self.g.config.models[name]
            if route.path is not None:
                continue
            try:
                versions = registry.list(route.registry_name or name)
                want = serving_version(route, versions)
                if want is not None and str(want) != router.primary.version:
                    loaded = self._load(name, route, want)
                    old, router.primary = router.primary, loaded
                    self._retire(old)
                    changes.append(f"model {name} now serves version {loaded.version} (was {old.version})")
                if route.canary is None and route.version is None:
                    changes += self._apply_canary(name, route, versions)
                self.errors.pop(name, None)
            except Exception as exc:  # a version this worker cannot load: the one it serves stays, the rest applies
                self.errors[name] = " ".join(str(exc).split())
                log.error("fleet controls: model %s keeps version %s: %s", name, router.primary.version, exc)
        return changes

    def _apply_canary(self, name: str, route: ModelRoute, versions: list[ModelVersion]) -> list[str]:
        router = self.g.routers[name]
        mv = next((v for v in versions if v.status == "production" and v.canary_percent is not None), None)
        if mv is None:
            if router.canary is None:
                return []
            gone, router.canary, router.canary_percent = router.canary, None, 0.0
            self._retire(gone)
            return [f"model {name} has no canary any more (was version {gone.version})"]
        percent = float(mv.canary_percent or 0.0)
        if router.canary is not None and router.canary.version == str(mv.version):
            if router.canary_percent == percent:
                return []
            router.canary_percent = percent
            return [f"model {name}: canary version {mv.version} takes {percent:g} %"]
        old = router.canary
        router.canary, router.canary_percent = self._load(name, route, mv.version), percent
        if old is not None:
            self._retire(old)
        return [f"model {name}: canary version {mv.version} takes {percent:g} %"]

    def load(self, name: str, version: int) -> LoadedModel:
        """Load and check a registry version of route ``name`` (it must take the primary's inputs)."""
        from modelshield.serve.runtime import load_source

        route = self.g.config.models[name]
        primary = self.g.routers[name].primary
        loaded = load_source(name, route.model_copy(update={"version": version}), self.g.registry)
        loaded.max_batch = primary.max_batch
        if loaded.signature != primary.signature:
            loaded.executor.shutdown(wait=False)
            raise InputError(f"it takes different inputs ({loaded.signature}) than the version served now")
        return loaded

    def discard(self, key: tuple[str, str]) -> None:
        """Drop a version an admin call loaded if no apply put it in service."""
        loaded = self.ready.pop(key, None)
        if loaded is not None:
            loaded.executor.shutdown(wait=False)

    def _load(self, name: str, route: ModelRoute, version: int) -> LoadedModel:
        loaded = self.ready.pop((name, str(version)), None)
        loaded = loaded if loaded is not None else self.load(name, version)
        self.g.rehashed.append(loaded)
        return loaded

    def _retire(self, old: LoadedModel) -> None:
        """Out of service: its thread may still run the guard's batches, so it is shut at close, not now."""
        self.g.replaced.append(old)
        with contextlib.suppress(ValueError):
            self.g.rehashed.remove(old)

    def _apply_quarantines(self, rows: dict[str, Control]) -> list[str]:
        changes = []
        for name, router in self.g.routers.items():
            for loaded in (router.primary, router.canary, router.shadow):
                if loaded is None:
                    continue
                row = rows.get(f"{name}:{loaded.version}")
                if row is not None and loaded.quarantined is None:
                    loaded.quarantine(str(row.value.get("reason") or "no reason given"))
                    changes.append(f"model {name} version {loaded.version} quarantined ({loaded.quarantined})")
                elif row is None and loaded.quarantined is not None:
                    loaded.release()
                    changes.append(f"model {name} version {loaded.version} released from quarantine")
        return changes

    def _apply_limits(self, rows: dict[str, Control]) -> list[str]:
        changes: list[str] = []
        kept: dict[str, LimitOverride] = {}
        for subject, row in rows.items():
            old = self.overrides.get(subject)
            if old is not None and old.generation == row.generation:
                kept[subject] = old
                continue
            rps, burst = float(row.value["rps"]), float(row.value["burst"])
            assert row.expires_at is not None
            kept[subject] = LimitOverride(
                self._bucket(rps, burst, row.generation), rps, burst, row.expires_at, row.generation
            )
            changes.append(
                f"rate limit for {subject}: {rps:g}/s, burst {burst:g}, for {row.expires_at - time.time():.0f} s"
            )
        changes += [f"rate limit override for {s} ended" for s in self.overrides.keys() - kept.keys()]
        self.overrides = kept
        return changes

    def _bucket(self, rps: float, burst: float, gen: int) -> RateLimiter:
        """One bucket for the whole fleet when the limits are in Redis (a fresh one per change); else this process's."""
        redis_url, rl = self.g.config.redis_url(), self.g.config.rate_limits
        if not self.g.remote_limits or redis_url is None:
            return LocalTokenBucket(rps, burst)
        from modelshield.serve.ratelimit import RedisTokenBucket

        return RedisTokenBucket(redis_url, rps, burst, rl.fail_open, prefix=f"{rl.redis_prefix}:override:{gen}:")

    def _apply_guards(self, rows: dict[str, Control]) -> list[str]:
        changes = []
        for name, state in self._guards.items():
            row = rows.get(name)
            gen = None if row is None else row.generation
            if gen == state.generation:
                continue
            guard = self.guards[name].guard
            fallback, threshold, min_confidence = state.normal
            if row is None:
                guard.fallback, guard.threshold, guard.min_confidence = state.normal
                state.mode = "normal"
            else:
                guard.fallback = None  # a flagged input is refused, not answered with an abstention or a default
                asked = row.value.get("threshold"), row.value.get("min_confidence")
                guard.threshold = threshold if asked[0] is None else asked[0]
                guard.min_confidence = min_confidence if asked[1] is None else asked[1]
                state.mode = "strict"
            state.generation = gen
            changes.append(
                f"guard of {name} is {state.mode} (threshold {guard.threshold}, min confidence {guard.min_confidence})"
            )
        return changes

    # -- per request -------------------------------------------------------------------------------------------

    def spend_override(self, identity: Identity) -> None:
        """Spend one token from the caller's override bucket, if it has one that has not expired."""
        override = self.overrides.get(identity.subject)
        if override is None:
            return
        if time.time() >= override.expires_at:
            self.overrides.pop(identity.subject, None)
            return
        enforce(override.bucket, f"id:{identity.subject}", 1.0, what="incident rate limit")

    def guard_mode(self, name: str) -> str:
        state = self._guards.get(name)
        return "normal" if state is None else state.mode

    # -- in the background -------------------------------------------------------------------------------------

    async def run_forever(self) -> None:
        """Apply changes as Redis announces them, and poll the generation every ``poll_seconds`` regardless."""
        loop = asyncio.get_running_loop()
        wake = asyncio.Event()

        def poke(_message: str = "") -> None:
            loop.call_soon_threadsafe(wake.set)

        if self.feed is not None:
            await asyncio.to_thread(self.feed.start, poke, poke)
        failing = False
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), self.poll_seconds)
                wake.clear()
                try:
                    await asyncio.to_thread(self.sync)
                except Exception as exc:  # the store is down: serve with the state applied last, retry next poll
                    if not failing:
                        log.error("fleet controls: cannot read the store (%s); retrying", " ".join(str(exc).split()))
                    failing = True
                else:
                    if failing:
                        log.warning("fleet controls: the store answers again; generation %d applied", self.applied)
                    failing = False
        finally:
            if self.feed is not None:
                await asyncio.to_thread(self.feed.stop)

    def describe(self) -> dict[str, Any]:
        """This worker's applied generation, the store's, and what every recently seen worker has applied."""
        return {
            "scope": self.store.scope,
            "replica": self.replica,
            "generation_applied": self.applied,
            "store_generation": self.store.generation(),
            "poll_seconds": self.poll_seconds,
            "redis": "off" if self.feed is None else ("listening" if self.feed.listening else "lost"),
            "errors": dict(self.errors),
            "replicas": self.store.replicas(),
        }

    def close(self) -> None:
        for key in list(self.ready):
            self.discard(key)
        self.store.close()
