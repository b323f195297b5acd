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
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from modelshield.core.errors import InputError, ModelShieldError
from modelshield.monitor.live import LiveCheck, LiveMonitor
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
    ) -> None:
        self.metrics, self.audit_log = metrics, audit_log
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

    def observe_request(self, record: Mapping[str, Any]) -> None:
        """Count one audited predict request in its model's current window, by decision and guard verdict."""
        if record.get("action") != "predict":
            return
        bucket = self._bucket(str(record.get("model", "")))
        if bucket is None:
            return
        bucket.add("requests")
        bucket.add(_DECISIONS.get(str(record.get("decision")), "errors"))
        guard = record.get("guard")
        if isinstance(guard, dict) and guard.get("action") == "accept":
            bucket.add("guard_accept")

    def observe_inputs(self, name: str, x: np.ndarray) -> None:
        """Copy a validated batch into the model's live window (the statistics wait for the check)."""
        watch = self.watches.get(name)
        if watch is not None and watch.monitor is not None:
            watch.monitor.observe(x)
        bucket = self._bucket(name)
        if bucket is not None:
            bucket.add("samples", len(x))

    def observe_outputs(self, name: str, probs: np.ndarray) -> None:
        """Queue an answered batch's probabilities for the model's output monitor."""
        watch = self.watches.get(name)
        if watch is not None and watch.monitor is not None:
            watch.monitor.observe_outputs(probs)

    def observe_extraction(self, name: str) -> None:
        bucket = self._bucket(name)
        if bucket is not None:
            bucket.add("extraction")

    # -- the checks (background task; statistics in a worker thread) -------------------------------

    async def run_forever(self) -> None:
        """Check every monitored model every ``check_seconds`` (its own), until cancelled."""
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
                if watch.monitor.seen == watch.monitor.checked_at_seen:
                    continue  # nothing new since the last check
                try:
                    check = await asyncio.to_thread(watch.monitor.check)
                except Exception:  # a failing check must not stop the others, nor the gateway
                    log.exception("live check of model %s failed", name)
                    continue
                await self.record_check(watch, check)
            await asyncio.sleep(max(0.05, min(due.values()) - time.monotonic()))

    async def check_now(self, name: str) -> dict[str, Any]:
        """Run one model's check now (tests, benchmarks) and return its summary."""
        watch = self.watches[name]
        if watch.monitor is None:
            raise InputError(f"model {name} is not monitored")
        check = await asyncio.to_thread(watch.monitor.check)
        await self.record_check(watch, check)
        return watch.last or {}

    async def record_check(self, watch: ModelWatch, check: LiveCheck) -> None:
        """Metrics, the time window's verdict, and audit events for one check."""
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
        first; reads only the records added since the last call. Blocking: run it in a worker thread."""
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

    def snapshot(self) -> dict[str, Any]:
        """Every model's windows, last check and correlation summary (on the event loop: the windows change there)."""
        self._bucket_all()
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
                "correlation": correlate(list(w.buckets)),
            }
        return {"now": time.time(), "started": self.started, "models": models}

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


def _floor(t: float, width: float) -> float:
    return math.floor(t / width) * width


__all__ = ["Bucket", "GatewayLive", "build_monitor", "correlate"]
