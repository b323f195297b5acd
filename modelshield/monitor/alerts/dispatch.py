"""From notices to the world: each notice is made durable in the audit log first, then sent to its routes.

The audit record comes first so that an alert that reached a pager is always in the log; a route that fails
(after its own retries) is recorded as ``alert.delivery_failed`` and the other routes still get the alert.

``AuditFollower`` feeds an ``AlertDispatcher`` from an audit log — the gateway's requests and security events,
signals that monitors in other processes published, and acknowledgements written by ``modelshield monitor
alerts ack`` — reading only records it has not seen (its cursor is saved with the engine state).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelshield.core.errors import InputError
from modelshield.monitor.alerts.channels import DeliveryError, Sink
from modelshield.monitor.alerts.engine import Alert, AlertEngine, Notice
from modelshield.monitor.alerts.events import alert_event, event_alert
from modelshield.monitor.alerts.rules import AbsenceRule, RateRule, ThresholdRule
from modelshield.monitor.alerts.signals import Signal, read_records, record_signal

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from modelshield.audit.log import AuditLog

log = logging.getLogger(__name__)


@dataclass
class Delivery:
    """One notice sent to one route: whether it got there, and how long the channel took."""

    action: str
    alert_id: str
    rule: str
    route: str
    ok: bool
    seconds: float
    error: str | None = None


class AlertDispatcher:
    """Run notices through the audit log and the channels; ``deliveries`` keeps what happened."""

    def __init__(self, engine: AlertEngine, channels: Mapping[str, Sink], audit: AuditLog | None = None) -> None:
        missing = {s.route for steps in engine.rules.escalation.values() for s in steps} - set(channels)
        if missing:
            raise InputError(f"no channel for route(s) {', '.join(sorted(missing))}")
        self.engine, self.channels, self.audit = engine, channels, audit
        self.deliveries: list[Delivery] = []

    def observe(self, signal: Signal) -> list[Delivery]:
        return self.handle(self.engine.observe(signal))

    def observe_all(self, signals: Iterable[Signal]) -> list[Delivery]:
        return [d for s in signals for d in self.observe(s)]

    def tick(self) -> list[Delivery]:
        return self.handle(self.engine.tick())

    def acknowledge(self, alert_id: str, by: str) -> list[Delivery]:
        return self.handle(self.engine.acknowledge(alert_id, by))

    def handle(self, notices: Iterable[Notice], *, record: bool = True) -> list[Delivery]:
        """Append each notice to the audit log (unless it is there already: ``record=False``), then send it."""
        out: list[Delivery] = []
        for notice in notices:
            event = alert_event(notice)
            if record and self.audit is not None:
                self.audit.append(event)
            for route in notice.routes:
                out.append(self._send(notice, route, event))
        self.deliveries.extend(out)
        return out

    def _send(self, notice: Notice, route: str, event: dict[str, Any]) -> Delivery:
        started = time.perf_counter()
        try:
            self.channels[route].send(event)
        except DeliveryError as e:
            error = str(e)
            log.warning("alert %s (%s) not delivered to %s: %s", notice.alert.id, notice.action, route, error)
            if self.audit is not None:
                self.audit.append(alert_event(notice, error=error, route=route))
            a = notice.alert
            return Delivery(notice.action, a.id, a.rule, route, False, time.perf_counter() - started, error)
        return Delivery(notice.action, notice.alert.id, notice.alert.rule, route, True, time.perf_counter() - started)


def send_test(channels: Mapping[str, Sink], route: str, *, at: float | None = None) -> Delivery:
    """Send a clearly marked test alert to one route (``alerts test``); raises ``DeliveryError`` if it fails."""
    if route not in channels:
        raise InputError(f"no route named {route!r} (routes: {', '.join(channels)})")
    now = time.time() if at is None else at
    alert = Alert(
        id="test",
        rule="test",
        kind="test",
        severity="info",
        key="test",
        labels={},
        summary="modelshield test alert: if you can read this, the route works",
        fired_at=now,
        last_seen=now,
        value=0.0,
    )
    started = time.perf_counter()
    channels[route].send(alert_event(Notice("fired", alert, [route], now)))
    return Delivery("fired", "test", "test", route, True, time.perf_counter() - started)


def acknowledge_in_log(audit: AuditLog, alert_id: str, by: str, *, at: float | None = None) -> Alert:
    """Record that ``by`` is handling alert ``alert_id`` (``alerts ack``); a running ``alerts run`` stops
    escalating it when it reads the record. Refused for an unknown, resolved or already acknowledged alert."""
    import re

    import sqlalchemy as sa

    from modelshield.audit import schema

    if not re.fullmatch(r"[0-9a-f]{16}", alert_id):
        raise InputError(f"{alert_id!r} is not an alert id (16 hex digits, from the alert.fired record)")
    query = (
        sa.select(schema.records.c.event)
        .where(schema.records.c.event.like(f'%"id":"{alert_id}"%'))
        .order_by(schema.records.c.seq.desc())
    )
    alert = None
    with audit.engine.connect() as conn:
        for (text,) in conn.execute(query):
            event = json.loads(text)
            if event.get("action") != "alert.delivery_failed" and (found := event_alert(event)) is not None:
                alert = found
                break
    if alert is None or alert.id != alert_id:
        raise InputError(f"no alert {alert_id} in the audit log")
    if alert.state != "firing":
        raise InputError(f"alert {alert_id} is already resolved")
    if alert.acknowledged_by is not None:
        raise InputError(f"alert {alert_id} was already acknowledged by {alert.acknowledged_by}")
    alert.acknowledged_by = by
    audit.append(alert_event(Notice("acknowledged", alert, [], time.time() if at is None else at, by)))
    return alert


def _horizon(rule: ThresholdRule | RateRule | AbsenceRule) -> float:
    if isinstance(rule, RateRule):
        return rule.window_s
    return rule.resolve_after_s if isinstance(rule, ThresholdRule) else rule.for_s


class AuditFollower:
    """Feed a dispatcher from the audit log at ``engine``, from a cursor kept in ``state`` (a JSON file)."""

    def __init__(self, dispatcher: AlertDispatcher, db: Engine, state: Path | None = None) -> None:
        self.dispatcher, self.db, self.state = dispatcher, db, state
        self.cursor = 0
        self._since: float | None = None
        if state is not None and state.exists():
            self._load(state)
        else:
            # first run: only the records the rules can still see — the longest rate window, the longest a
            # threshold alert stays open without a new signal, the longest absence
            back = max([_horizon(r) for r in dispatcher.engine.rules.rules] + [0.0])
            self._since = dispatcher.engine.clock() - back

    def poll(self) -> list[Delivery]:
        """Read the records added since the last poll, evaluate them, then the time-driven rules."""
        out: list[Delivery] = []
        engine = self.dispatcher.engine
        for seq, at_us, event in read_records(self.db, after_seq=self.cursor, since=self._since):
            self.cursor = seq
            if event.get("action") == "alert.acknowledged" and isinstance(event.get("alert"), dict):
                alert_id = str(event["alert"].get("id", ""))
                if engine.get(alert_id) is not None:  # written by `alerts ack`: tell the routes, do not record twice
                    by = str(event.get("by") or "someone")
                    out.extend(self.dispatcher.handle(engine.acknowledge(alert_id, by), record=False))
                continue
            signal = record_signal(event, at_us)
            if signal is not None:
                out.extend(self.dispatcher.observe(signal))
        self._since = None
        out.extend(self.dispatcher.tick())
        if self.state is not None:
            self._save(self.state)
        return out

    def _save(self, path: Path) -> None:
        from modelshield.core.files import atomic_output

        engine = self.dispatcher.engine
        data = {
            "version": 1,
            "cursor": self.cursor,
            "alerts": [a.to_dict() for a in engine.alerts.values()],
            "last_seen": engine.last_seen,
            "rates": {k: list(v) for k, v in engine.rate_times.items()},
        }
        with atomic_output(path, mode=0o600) as f:
            f.write(json.dumps(data, indent=1).encode())

    def _load(self, path: Path) -> None:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            self.cursor = int(data["cursor"])
            engine = self.dispatcher.engine
            for raw in data["alerts"]:
                engine.restore(Alert.from_dict(raw))
            for name, seen in data["last_seen"].items():
                if name in engine.last_seen:
                    engine.last_seen[name] = float(seen)
            for key, times in data["rates"].items():
                engine.rate_times[key].extend(float(t) for t in times)
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise InputError(f"{path} is not an alert state file: {type(e).__name__}: {e}") from None


__all__ = ["AlertDispatcher", "AuditFollower", "Delivery", "acknowledge_in_log", "send_test"]
