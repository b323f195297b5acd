"""Live monitoring in the gateway: drift and output alarms per served model, next to its security events.

Per request the pipeline does cheap things only: ``observe_inputs`` copies each validated batch into the model's
``modelshield.monitor.live.LiveMonitor`` window (a memcpy) — before the guard, so inputs it refuses or abstains on
still count as traffic — ``observe_outputs`` queues the answered probabilities, and ``observe_request`` adds one to a counter of the
current time window (allowed, denied, rate-limited, invalid, guard reject/abstain/accept). A background task runs
each model's check every ``check_seconds`` in a worker thread — the drift tests of ``modelshield.monitor.drift``
on the window, the ``OutputMonitor`` on the queued outputs — then sets the Prometheus gauges, files the verdict
in the same time window, and writes ``monitor.drift`` (at the onset of drift) and ``monitor.output_alarm`` events
to the audit log, where the dashboard and any log consumer find them beside ``security.extraction``.

The correlation is per model and time window (``bucket_seconds``): which windows had drift or an output alarm,
which had security events (denials, rate limits, guard rejections and abstentions, extraction flags), which had
both, and the Pearson correlation of the drifted-feature share with the count of security events across windows.
An evasion campaign typically shows as drift + output alarms + guard abstentions in the same windows; honest
drift (new traffic) shows as drift without security events.

**Fleet scope.** With Redis configured (``rate_limits.redis_url``, keys under ``rate_limits.redis_prefix``), every
worker of every replica shares one live window (``FleetLink``). Once a second (``FLUSH_SECONDS``) each worker sends,
in one pipeline: its counter increments (``HINCRBY`` into one hash per model and time window, kept as long as the
windows are) and, per monitored model, an ``Interval`` (``modelshield.monitor.live``): the inputs it saw binned on
the reference sketch's bins with their moments, and its outputs' count and stream sums, as one field of a hash per
model and second (kept two minutes). One worker per model evaluates: the holder of a Redis lease (``SET NX PX``,
renewed at each check, 3 × ``check_seconds``). At each check it claims the seconds since the last evaluated one by a
compare-and-set of a cursor (so a second is evaluated once even while the lease changes hands), merges every
worker's intervals, runs the drift tests and the output monitor on the merged fleet window, writes the audit
events and the check's fields (``checks``, ``drift_share`` by a max, ``min_p`` by a min), and publishes its
verdict; an alarm is therefore raised once for the fleet, not once per worker. Every worker's monitor view reads
the merged windows and the verdict from Redis (``"scope": "fleet"``). Without Redis, or while it does not answer,
each worker checks and shows its own share (``"scope": "worker"`` and the reason), as before.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import secrets
import socket
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from modelshield.core.errors import InputError, ModelShieldError
from modelshield.monitor.live import Interval, LiveCheck, LiveMonitor
from modelshield.serve.config import MonitorConfig
from modelshield.serve.metrics import GatewayMetrics

if TYPE_CHECKING:
    from modelshield.audit import AuditLog
    from modelshield.monitor.outputs import OutputReference
    from modelshield.monitor.sketch import ReferenceSketch

log = logging.getLogger("modelshield.serve")

#: audit decisions of a predict request → the window counter they add to
_DECISIONS = {
    "allow": "allowed",
    "deny": "denied",
    "rate_limited": "rate_limited",
    "invalid": "invalid",
    "guard_reject": "guard_reject",
    "guard_fallback": "guard_fallback",
}
#: counters that are security events (the correlation's other side)
SECURITY = ("denied", "rate_limited", "guard_reject", "guard_fallback", "extraction")
#: requests and routine operations, left out of the alert feed: every other audit event (security.*, monitor.*,
#: alert.*, incident.*, and types added later) is shown
_ROUTINE = ("predict", "models.list", "admin.", "keys.", "registry.", "policy.")
#: output alarms written to the audit log per check, at most (the rest are counted in the metric)
_ALARMS_AUDITED = 10
EVENTS_KEPT = 200
#: how often each worker sends its share of the traffic to Redis (fleet scope), in seconds
FLUSH_SECONDS = 1.0
#: seconds a flush interval waits before the evaluator reads it (the other workers' flushes of it have landed)
GRACE_SECONDS = 2
#: seconds the per-second interval hashes live in Redis, and the most a new evaluator reaches back
INTERVALS_KEPT = 120
#: bucket fields the evaluator writes; every other field is a request counter
_CHECK_FIELDS = ("checks", "drift_checks", "alarms", "drift_share", "min_p")
# a lease held by one worker: take it when free, renew it when ours
_LEASE = """
local holder = redis.call('GET', KEYS[1])
if holder == false then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 end
if holder == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
return 0
"""
# compare-and-set of the evaluated-until cursor: a second is evaluated by one worker only
_CLAIM = """
local cur = redis.call('GET', KEYS[1])
if (cur == false and ARGV[1] == '') or cur == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3]) return 1
end
return 0
"""
# a window's largest drifted share and smallest p-value over every check of it
_EXTREMES = """
local s = redis.call('HGET', KEYS[1], 'drift_share')
if s == false or tonumber(ARGV[1]) > tonumber(s) then redis.call('HSET', KEYS[1], 'drift_share', ARGV[1]) end
if ARGV[2] ~= '' then
  local p = redis.call('HGET', KEYS[1], 'min_p')
  if p == false or tonumber(ARGV[2]) < tonumber(p) then redis.call('HSET', KEYS[1], 'min_p', ARGV[2]) end
end
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
"""


@dataclass
class Bucket:
    """One model's counters over one time window."""

    start: float
    counts: dict[str, int] = field(default_factory=dict)
    checks: int = 0
    drift_checks: int = 0
    max_share: float = 0.0
    min_p: float | None = None
    alarms: int = 0

    def add(self, key: str, n: int = 1) -> None:
        self.counts[key] = self.counts.get(key, 0) + n

    @property
    def security(self) -> int:
        return sum(self.counts.get(k, 0) for k in SECURITY)

    @property
    def flagged(self) -> bool:
        return self.drift_checks > 0 or self.alarms > 0

    @classmethod
    def from_fields(cls, start: float, fields: Mapping[str, str]) -> Bucket:
        """A window as the fleet's Redis hash holds it (request counters and the evaluator's check fields)."""
        counts = {k: int(v) for k, v in fields.items() if k not in _CHECK_FIELDS}
        p = fields.get("min_p")
        return cls(
            start,
            counts,
            int(fields.get("checks", 0)),
            int(fields.get("drift_checks", 0)),
            float(fields.get("drift_share", 0.0)),
            None if p is None else float(p),
            int(fields.get("alarms", 0)),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "start": self.start, **self.counts, "security": self.security, "checks": self.checks,
            "drift_checks": self.drift_checks, "drift_share": self.max_share, "min_p": self.min_p,
            "alarms": self.alarms, "flagged": self.flagged,
        }  # fmt: skip


@dataclass
class ModelWatch:
    """A served model's windows, and its live monitor when it has a reference."""

    name: str
    buckets: deque[Bucket]
    monitor: LiveMonitor | None = None
    config: MonitorConfig | None = None
    last: dict[str, Any] | None = None
    drifting: bool = False
    alarms: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=50))


def build_monitor(name: str, setting: MonitorConfig, model: Any, registered: Path | None = None) -> LiveMonitor:
    """The live monitor of one model: its sketch (``sketch_file``, else the one ``registered`` with the model
    version, else built from ``reference_data``) and its reference outputs (the model's answers on the reference
    data, or on the sketch's sample rows)."""
    import torch

    from modelshield.monitor.drift import DriftConfig
    from modelshield.monitor.live import sketch_from_inputs, sketch_inputs
    from modelshield.monitor.outputs import OutputReference

    width = int(np.prod(model.input_shape))
    where = f"model {name}: monitor"
    sketch: ReferenceSketch | None = None
    ref_x: np.ndarray | None = None
    try:
        if setting.reference_data is not None:
            from modelshield.core.datasets import load_dataset

            data = load_dataset(
                setting.reference_data, bounds=tuple(model.bounds), input_shape=tuple(model.input_shape)
            )
            order = np.random.default_rng(0).permutation(len(data))[: setting.reference_samples]
            ref_x = data.x.numpy()[order].reshape(len(order), -1)
        file = Path(setting.sketch_file) if setting.sketch_file is not None else registered
        if file is not None:
            from modelshield.monitor.sketch import load_sketch

            sketch = load_sketch(file)
        elif ref_x is not None:
            sketch = sketch_from_inputs(ref_x)
        else:
            raise InputError(
                "needs a reference: sketch_file, reference_data, or a registered version whose metadata names "
                "a sketch file in its folder (sketch=...)"
            )
        if ref_x is None:
            ref_x = sketch_inputs(sketch, width)
        with torch.no_grad():
            probs = model.predict_proba(torch.from_numpy(ref_x.reshape(-1, *model.input_shape)).float()).numpy()
        outputs: OutputReference = OutputReference.from_outputs(probs)
        drift = DriftConfig(test=setting.test, alpha=setting.alpha, mmd=setting.mmd)
        return LiveMonitor(
            sketch,
            outputs,
            width=width,
            window=setting.window,
            min_rows=setting.min_rows,
            drift=drift,
            output_window=setting.output_window,
        )
    except (ModelShieldError, OSError) as exc:
        raise InputError(f"{where}: {exc}") from None


class FleetLink:
    """This worker's side of the fleet-wide live window in Redis (the module docstring has the protocol). Every method
    blocks (run it in a worker thread) and never raises on a Redis failure: it records it in ``error`` and returns
    a neutral value, and the gateway falls back to this worker's own window until Redis answers again."""

    def __init__(self, url: str, prefix: str) -> None:
        import redis

        self.prefix = f"{prefix}:live"
        self.worker = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self._redis = redis.Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0, decode_responses=True)
        self._lease = self._redis.register_script(_LEASE)
        self._claim = self._redis.register_script(_CLAIM)
        self._extremes = self._redis.register_script(_EXTREMES)
        #: the last Redis failure, None while Redis answers
        self.error: str | None = None
        self._seq = 0

    def _key(self, model: str, *parts: object) -> str:
        return ":".join([self.prefix, model, *map(str, parts)])

    def _guard(self, what: str, call: Any, default: Any) -> Any:
        import redis

        try:
            out = call()
        except redis.RedisError as exc:
            if self.error is None:
                log.error("fleet live window: Redis failed (%s); this worker watches its own traffic", exc)
            self.error = f"Redis unreachable while trying to {what}: {' '.join(str(exc).split())}"
            return default
        if self.error is not None:
            log.warning("fleet live window: Redis answers again; back to the fleet's window")
        self.error = None
        return out

    def ping(self) -> bool:
        return bool(self._guard("ping", self._redis.ping, False))

    def publish(
        self,
        counts: Mapping[tuple[str, float], Mapping[str, int]],
        intervals: Mapping[str, str],
        ttl: Mapping[str, int],
    ) -> bool:
        """One pipeline: the counter increments per (model, window start), and this flush's interval per model."""

        def send() -> bool:
            now = time.time()
            pipe = self._redis.pipeline(transaction=False)
            for (model, start), fields in counts.items():
                key = self._key(model, "b", repr(start))
                for field_name, n in fields.items():
                    pipe.hincrby(key, field_name, n)
                pipe.expire(key, ttl[model])
            self._seq += 1
            for model, body in intervals.items():
                key = self._key(model, "i", int(now))
                pipe.hset(key, f"{self.worker}:{self._seq}", body)
                pipe.expire(key, INTERVALS_KEPT)
            workers = f"{self.prefix}:workers"
            pipe.zadd(workers, {self.worker: now})
            pipe.zremrangebyscore(workers, 0, now - 60)
            pipe.execute()
            return True

        return bool(self._guard("publish", send, False))

    def lead(self, model: str, lease_seconds: float) -> bool:
        """Whether this worker evaluates ``model`` now (it holds, or just took, the lease)."""
        key = self._key(model, "leader")
        return bool(
            self._guard(
                "take the lease", lambda: self._lease(keys=[key], args=[self.worker, int(lease_seconds * 1000)]), 0
            )
        )

    def claim(self, model: str) -> tuple[list[list[str]], dict[str, Any] | None] | None:
        """The seconds since the last evaluated one, claimed for this worker: each second's interval JSON from every
        worker, and the fleet's last published state; None when another worker claimed them first or Redis failed."""

        def take() -> tuple[list[list[str]], dict[str, Any] | None] | None:
            cursor_key = self._key(model, "cursor")
            pipe = self._redis.pipeline(transaction=False)
            pipe.get(cursor_key)
            pipe.get(self._key(model, "state"))
            cursor, state = pipe.execute()
            end = int(time.time()) - GRACE_SECONDS
            start = max(end - INTERVALS_KEPT + 1, int(cursor) + 1 if cursor else end - 2 * GRACE_SECONDS)
            if start > end:
                return [], (json.loads(state) if state else None)
            if not self._claim(keys=[cursor_key], args=[cursor or "", end, 86400]):
                return None
            pipe = self._redis.pipeline(transaction=False)
            for second in range(start, end + 1):
                pipe.hvals(self._key(model, "i", second))
            return [list(v) for v in pipe.execute()], (json.loads(state) if state else None)

        out: tuple[list[list[str]], dict[str, Any] | None] | None = self._guard(
            "claim the fleet's intervals", take, None
        )
        return out

    def record(
        self, model: str, bucket: float, ttl: int, fields: Mapping[str, int], extremes: tuple[float, float | None] | None,
        state: dict[str, Any], alarms: list[dict[str, Any]],
    ) -> None:  # fmt: skip
        """The evaluator's check: its window fields, its verdict for every worker's view, its new alarms."""

        def send() -> None:
            key = self._key(model, "b", repr(bucket))
            pipe = self._redis.pipeline(transaction=False)
            for name, n in fields.items():
                pipe.hincrby(key, name, n)
            pipe.expire(key, ttl)
            if extremes is not None:
                share, p = extremes
                self._extremes(keys=[key], args=[repr(share), "" if p is None else repr(p), ttl], client=pipe)
            pipe.set(self._key(model, "state"), json.dumps(state), ex=ttl)
            if alarms:
                alarm_key = self._key(model, "alarms")
                pipe.lpush(alarm_key, *(json.dumps(a) for a in alarms))
                pipe.ltrim(alarm_key, 0, 49)
                pipe.expire(alarm_key, ttl)
            pipe.execute()

        self._guard("record a check", send, None)

    def read(self, windows: Mapping[str, list[float]]) -> dict[str, Any] | None:
        """The fleet's view: per model its windows (by start), state and recent alarms; the workers seen lately."""

        def get() -> dict[str, Any]:
            pipe = self._redis.pipeline(transaction=False)
            for model, starts in windows.items():
                for start in starts:
                    pipe.hgetall(self._key(model, "b", repr(start)))
                pipe.get(self._key(model, "state"))
                pipe.lrange(self._key(model, "alarms"), 0, 49)
            pipe.zcount(f"{self.prefix}:workers", time.time() - 5 * FLUSH_SECONDS, "+inf")
            answers = iter(pipe.execute())
            models: dict[str, Any] = {}
            for model, starts in windows.items():
                buckets = [Bucket.from_fields(start, fields) for start in starts if (fields := next(answers))]
                state = next(answers)
                alarms = [json.loads(a) for a in next(answers)]
                models[model] = {"buckets": buckets, "state": json.loads(state) if state else {}, "alarms": alarms}
            return {"models": models, "workers": int(next(answers)), "at": time.time()}

        out: dict[str, Any] | None = self._guard("read the fleet's window", get, None)
        return out


class GatewayLive:
    """Per served model: time-window counters of its requests, and its live monitor's verdicts."""

    def __init__(
        self,
        names: list[str],
        monitors: Mapping[str, tuple[LiveMonitor, MonitorConfig]],
        metrics: GatewayMetrics,
        audit_log: AuditLog | None,
        bucket_seconds: float = 60.0,
        buckets: int = 120,
        *,
        redis_url: str | None = None,
        redis_prefix: str = "modelshield",
    ) -> None:
        self.metrics, self.audit_log = metrics, audit_log
        #: the fleet-wide window in Redis (module docstring), None: this worker's own window only
        self.fleet = FleetLink(redis_url, redis_prefix) if redis_url else None
        self._deltas: dict[tuple[str, float], dict[str, int]] = {}
        self._view: dict[str, Any] | None = None
        self._leading: set[str] = set()
        self.watches: dict[str, ModelWatch] = {}
        for name in names:
            monitor, setting = monitors.get(name, (None, None))
            width = setting.bucket_seconds if setting else bucket_seconds
            kept = setting.buckets if setting else buckets
            self.watches[name] = ModelWatch(name, deque(maxlen=kept), monitor, setting)
            self.watches[name].buckets.append(Bucket(_floor(time.time(), width)))
        self.bucket_seconds = {
            n: (w.config.bucket_seconds if w.config else bucket_seconds) for n, w in self.watches.items()
        }
        self.events: deque[dict[str, Any]] = deque(maxlen=EVENTS_KEPT)
        self._event_seq = -1
        self.started = time.time()

    # -- the request path (event loop; O(1) or a memcpy) -------------------------------------------

    def _bucket(self, name: str) -> Bucket | None:
        watch = self.watches.get(name)
        if watch is None:
            return None
        now, width = time.time(), self.bucket_seconds[name]
        last = watch.buckets[-1]
        if now >= last.start + width:
            last = Bucket(_floor(now, width))
            watch.buckets.append(last)
        return last

    def _count(self, name: str, key: str, n: int = 1) -> None:
        """Add to a counter of the model's current window (and to what the next flush sends the fleet)."""
        bucket = self._bucket(name)
        if bucket is None:
            return
        bucket.add(key, n)
        if self.fleet is not None:
            delta = self._deltas.setdefault((name, bucket.start), {})
            delta[key] = delta.get(key, 0) + n

    def observe_request(self, record: Mapping[str, Any]) -> None:
        """Count one audited predict request in its model's current window, by decision and guard verdict."""
        if record.get("action") != "predict":
            return
        name = str(record.get("model", ""))
        self._count(name, "requests")
        self._count(name, _DECISIONS.get(str(record.get("decision")), "errors"))
        guard = record.get("guard")
        if isinstance(guard, dict) and guard.get("action") == "accept":
            self._count(name, "guard_accept")

    def observe_inputs(self, name: str, x: np.ndarray) -> None:
        """Copy a validated batch into the model's live window (the statistics wait for the check)."""
        watch = self.watches.get(name)
        if watch is not None and watch.monitor is not None:
            watch.monitor.observe(x)
        self._count(name, "samples", len(x))

    def observe_outputs(self, name: str, probs: np.ndarray) -> None:
        """Queue an answered batch's probabilities for the model's output monitor."""
        watch = self.watches.get(name)
        if watch is not None and watch.monitor is not None:
            watch.monitor.observe_outputs(probs)
        for label, n in enumerate(np.bincount(probs.argmax(axis=1)).tolist()):
            if n:
                self._count(name, f"class:{label}", n)

    def observe_extraction(self, name: str) -> None:
        self._count(name, "extraction")

    # -- the checks (background task; statistics in a worker thread) -------------------------------

    async def run_forever(self) -> None:
        """Check every monitored model every ``check_seconds`` (its own), and in fleet scope send this worker's
        share to Redis every ``FLUSH_SECONDS``, until cancelled."""
        await asyncio.gather(self._check_forever(), self._flush_forever())

    async def _check_forever(self) -> None:
        due = {n: 0.0 for n, w in self.watches.items() if w.monitor is not None}
        if not due:
            return
        while True:
            now = time.monotonic()
            for name, at in due.items():
                if now < at:
                    continue
                watch = self.watches[name]
                assert watch.monitor is not None and watch.config is not None
                due[name] = now + watch.config.check_seconds
                try:
                    if self.fleet is not None and self.fleet.error is None:
                        await self._check_fleet(watch)
                        continue
                    if watch.monitor.seen == watch.monitor.checked_at_seen:
                        continue  # nothing new since the last check
                    check = await asyncio.to_thread(watch.monitor.check)
                except Exception:  # a failing check must not stop the others, nor the gateway
                    log.exception("live check of model %s failed", name)
                    continue
                await self.record_check(watch, check)
            await asyncio.sleep(max(0.05, min(due.values()) - time.monotonic()))

    async def _check_fleet(self, watch: ModelWatch) -> None:
        """Evaluate the fleet's window of one model when this worker holds its lease (module docstring)."""
        link, monitor, config = self.fleet, watch.monitor, watch.config
        assert link is not None and monitor is not None and config is not None
        if not await asyncio.to_thread(link.lead, watch.name, 3 * max(1.0, config.check_seconds)):
            self._leading.discard(watch.name)
            return
        claimed = await asyncio.to_thread(link.claim, watch.name)
        if claimed is None:
            return
        texts, state = claimed
        if watch.name not in self._leading:  # taking over: go on from the fleet's counts and drift state
            self._leading.add(watch.name)
            state = state or {}
            watch.drifting = bool(state.get("drifting"))  # an onset already announced is not announced again
            monitor.fleet_seen = max(monitor.fleet_seen, int(state.get("seen") or 0))
            if monitor.outputs is not None:
                monitor.outputs.seen = max(monitor.outputs.seen, int(state.get("outputs_seen") or 0))
        if not any(texts):
            return

        def merged() -> list[Interval]:
            out = []
            for second in texts:
                parts = [Interval.from_json(t, monitor.sketch) for t in second]
                if parts:
                    for part in parts[1:]:
                        parts[0].merge(part)
                    out.append(parts[0])
            return out

        intervals = await asyncio.to_thread(merged)
        check = await asyncio.to_thread(monitor.check_fleet, intervals)
        await self.record_check(watch, check, fleet=True)

    async def _flush_forever(self) -> None:
        if self.fleet is None:
            return
        while True:
            await asyncio.sleep(FLUSH_SECONDS)
            try:
                await self.flush()
            except Exception:  # the fleet view is a view: a failed flush must not stop the gateway
                log.exception("fleet live flush failed")

    async def flush(self) -> bool:
        """Send this worker's counters and intervals since the last flush to Redis, in one pipeline; False (and the
        counters kept for the next try, the intervals left to this worker's own checks) when Redis fails."""
        link = self.fleet
        if link is None:
            return False
        deltas, self._deltas = self._deltas, {}
        ttl = {n: int(self.bucket_seconds[n] * w.buckets.maxlen) if w.buckets.maxlen else 7200
               for n, w in self.watches.items()}  # fmt: skip

        def send() -> bool:
            if link.error is not None and not link.ping():
                return False
            intervals = {}
            for name, w in self.watches.items():
                if w.monitor is not None and (interval := w.monitor.drain()) is not None:
                    intervals[name] = interval.to_json()
            return link.publish(deltas, intervals, ttl)

        if await asyncio.to_thread(send):
            return True
        oldest = time.time() - max(ttl.values(), default=0)
        for key, fields in deltas.items():
            if key[1] >= oldest:
                kept = self._deltas.setdefault(key, {})
                for k, n in fields.items():
                    kept[k] = kept.get(k, 0) + n
        return False

    async def check_now(self, name: str) -> dict[str, Any]:
        """Run one model's check now (tests, benchmarks) and return its summary."""
        watch = self.watches[name]
        if watch.monitor is None:
            raise InputError(f"model {name} is not monitored")
        check = await asyncio.to_thread(watch.monitor.check)
        await self.record_check(watch, check)
        return watch.last or {}

    async def record_check(self, watch: ModelWatch, check: LiveCheck, *, fleet: bool = False) -> None:
        """Metrics, the time window's verdict, and audit events for one check (a fleet check's also to Redis)."""
        name, m, summary = watch.name, self.metrics, check.summary()
        watch.last = summary
        m.drift_check_seconds.observe(check.seconds)
        m.live_window_rows.labels(name).set(check.rows)
        bucket = self._bucket(name)
        assert bucket is not None
        if check.drift is not None:
            drift = bool(summary["drift"])
            m.drift_detected.labels(name).set(1.0 if drift else 0.0)
            m.drift_share.labels(name).set(summary["share"])
            if summary["min_p"] is not None:
                m.drift_min_p.labels(name).set(summary["min_p"])
            m.drift_checks.labels(name, "true" if drift else "false").inc()
            bucket.checks += 1
            bucket.drift_checks += int(drift)
            bucket.max_share = max(bucket.max_share, summary["share"])
            if summary["min_p"] is not None:
                bucket.min_p = summary["min_p"] if bucket.min_p is None else min(bucket.min_p, summary["min_p"])
            if drift and not watch.drifting:
                await self._audit(
                    {
                        "action": "monitor.drift",
                        "model": name,
                        "decision": "flag",
                        "reason": f"{summary['drifted']} of {summary['features']} input features drifted",
                        "drift": {k: summary[k] for k in ("rows", "seen", "drifted", "features", "share", "min_p")},
                    }
                )
            watch.drifting = drift
        for alarm in check.alarms:
            m.output_alarms.labels(name, alarm.kind, alarm.stream).inc()
        bucket.alarms += len(check.alarms)
        if fleet and self.fleet is not None:
            drifted = check.drift is not None and bool(summary["drift"])
            fields = {"checks": int(check.drift is not None), "drift_checks": int(drifted), "alarms": len(check.alarms)}
            extremes = (summary["share"], summary["min_p"]) if check.drift is not None else None
            state = {"last_check": summary, "drifting": watch.drifting, "seen": check.seen, "leader": self.fleet.worker,
                     "outputs_seen": watch.monitor.outputs.seen if watch.monitor and watch.monitor.outputs else None}  # fmt: skip
            ttl = int(self.bucket_seconds[name] * (watch.buckets.maxlen or 120))
            alarms = summary["alarms"][:_ALARMS_AUDITED]
            await asyncio.to_thread(self.fleet.record, name, bucket.start, ttl, fields, extremes, state, alarms)
        for alarm in summary["alarms"][:_ALARMS_AUDITED]:
            watch.alarms.append(alarm)
            await self._audit(
                {
                    "action": "monitor.output_alarm",
                    "model": name,
                    "decision": "flag",
                    "reason": f"{alarm['detector']}: {alarm['stream']} went {alarm['direction']} ({alarm['kind']})",
                    "alarm": alarm,
                }
            )

    async def _audit(self, event: dict[str, Any]) -> None:
        if self.audit_log is None:
            return
        event = {
            "time": datetime.now(UTC).isoformat(),
            "actor": {"subject": "modelshield-gateway", "method": "system", "tenant": None},
            **event,
        }
        try:
            await self.audit_log.append_async(event)
        except Exception as exc:  # the monitor's events are evidence, not gates: log and go on
            log.error(
                "audit of %s for model %s failed: %s", event["action"], event["model"], " ".join(str(exc).split())
            )

    # -- reads (admin) -----------------------------------------------------------------------------

    def read_events(self) -> list[dict[str, Any]]:
        """Security, monitoring and alert events from the audit log (every action that is not a request), newest
        first; reads only the records added since the last call; in fleet scope, also reads the fleet's windows for
        the ``snapshot`` that follows. Blocking: run it in a worker thread."""
        if self.fleet is not None:
            now = time.time()
            windows = {
                n: [
                    _floor(now, self.bucket_seconds[n]) - i * self.bucket_seconds[n]
                    for i in range(w.buckets.maxlen or 1)
                ][::-1]
                for n, w in self.watches.items()
            }
            self._view = self.fleet.read(windows)
        if self.audit_log is None:
            return list(self.events)
        import sqlalchemy as sa

        from modelshield.audit.schema import records

        with self.audit_log.engine.connect() as conn:
            if self._event_seq < 0:
                top = conn.execute(sa.select(sa.func.max(records.c.seq))).scalar() or 0
                self._event_seq = max(0, int(top) - 20_000)
            rows = conn.execute(
                sa.select(records.c.seq, records.c.recorded_at, records.c.event)
                .where(records.c.seq > self._event_seq)
                .where(~records.c.event.like('{"action":"predict"%'))
                .order_by(records.c.seq)
                .limit(20_000)
            ).all()
        for seq, recorded_at, text in rows:
            self._event_seq = max(self._event_seq, int(seq))
            event = json.loads(text)
            action = str(event.get("action", ""))
            if action.startswith(_ROUTINE):
                continue
            self.events.appendleft(
                {
                    "seq": int(seq),
                    "time": recorded_at / 1e6,
                    "action": action,
                    "model": event.get("model"),
                    "decision": event.get("decision"),
                    "reason": event.get("reason"),
                    "subject": (event.get("actor") or {}).get("subject"),
                    "severity": event.get("severity"),
                }
            )
        return list(self.events)

    def scope(self) -> tuple[str, str | None]:
        """("fleet", None) when the view is the whole fleet's, else ("worker", why it is this worker's share only)."""
        if self.fleet is None:
            return "worker", "no Redis configured (rate_limits.redis_url): this worker's traffic only"
        if self.fleet.error is not None:
            return "worker", f"{self.fleet.error}; showing this worker's traffic only"
        if self._view is None:
            return "worker", "the fleet's window has not been read yet; showing this worker's traffic only"
        return "fleet", None

    def snapshot(self) -> dict[str, Any]:
        """Every model's windows, last check and correlation summary (on the event loop: the windows change there);
        the fleet's, as ``read_events`` last read them, in fleet scope."""
        self._bucket_all()
        scope, reason = self.scope()
        head: dict[str, Any] = {"now": time.time(), "started": self.started, "scope": scope}
        if scope == "worker":
            return {**head, "scope_reason": reason, **self._models()}
        assert self._view is not None and self.fleet is not None
        models = {}
        for name, w in self.watches.items():
            fleet = self._view["models"][name]
            state, buckets = fleet["state"], fleet["buckets"]
            models[name] = {
                "monitored": w.monitor is not None,
                "bucket_seconds": self.bucket_seconds[name],
                "window": w.monitor.window if w.monitor else None,
                "seen": state.get("seen", 0) if w.monitor else None,
                "outputs_seen": state.get("outputs_seen"),
                "drifting": bool(state.get("drifting")),
                "last_check": state.get("last_check"),
                "evaluated_by": state.get("leader"),
                "alarms": fleet["alarms"],
                "buckets": [b.to_dict() for b in buckets],
                "classes": class_mix(buckets),
                "correlation": correlate(buckets),
            }
        return {**head, "workers": self._view["workers"], "worker": self.fleet.worker, "models": models}

    def _models(self) -> dict[str, Any]:
        models = {}
        for name, w in self.watches.items():
            buckets = [b.to_dict() for b in w.buckets]
            models[name] = {
                "monitored": w.monitor is not None,
                "bucket_seconds": self.bucket_seconds[name],
                "window": w.monitor.window if w.monitor else None,
                "seen": w.monitor.seen if w.monitor else None,
                "outputs_seen": w.monitor.outputs.seen if w.monitor and w.monitor.outputs else None,
                "drifting": w.drifting,
                "last_check": w.last,
                "alarms": list(w.alarms)[::-1],
                "buckets": buckets,
                "classes": class_mix(list(w.buckets)),
                "correlation": correlate(list(w.buckets)),
            }
        return {"models": models}

    def _bucket_all(self) -> None:
        for name in self.watches:
            self._bucket(name)


def correlate(buckets: list[Bucket]) -> dict[str, Any]:
    """Which windows had drift or output alarms, which had security events, which both; and how strongly the
    drifted-feature share and the security-event count move together across the checked windows (Pearson r)."""
    active = [b for b in buckets if b.counts or b.checks or b.alarms]
    flagged = [b for b in active if b.flagged]
    security = [b for b in active if b.security]
    both = [b for b in flagged if b.security]
    checked = [b for b in active if b.checks]
    r = None
    if len(checked) >= 3:
        share = np.array([b.max_share for b in checked])
        events = np.array([b.security for b in checked], dtype=np.float64)
        if share.std() > 0 and events.std() > 0:
            r = float(np.corrcoef(share, events)[0, 1])
    p_sec_flagged = len(both) / len(flagged) if flagged else None
    unflagged = len(active) - len(flagged)
    p_sec_clean = (len(security) - len(both)) / unflagged if unflagged else None
    return {
        "windows": len(active),
        "flagged_windows": len(flagged),
        "security_windows": len(security),
        "co_occurring": [b.start for b in both],
        "security_rate_when_flagged": p_sec_flagged,
        "security_rate_otherwise": p_sec_clean,
        "pearson_r": None if r is None or math.isnan(r) else r,
    }


def class_mix(buckets: list[Bucket]) -> dict[str, int]:
    """Predictions answered per class over the windows (``class:<k>`` counters), in class order."""
    total: dict[int, int] = {}
    for b in buckets:
        for key, n in b.counts.items():
            if key.startswith("class:"):
                total[int(key[6:])] = total.get(int(key[6:]), 0) + n
    return {str(k): total[k] for k in sorted(total)}


def _floor(t: float, width: float) -> float:
    return math.floor(t / width) * width


__all__ = ["Bucket", "FleetLink", "GatewayLive", "build_monitor", "class_mix", "correlate"]
