"""Signals: the one shape every monitor's findings take on their way to the alert rules.

A signal is a name, a value, a time and string labels. The monitors' own results become signals here — output
alarms (``outputs.alarm``), training data-access alarms (``training.alarm``), drift reports (``drift.report``,
value = features that drifted) — and so do audit-log records: the gateway's live monitor's ``monitor.output_alarm``
and ``monitor.drift`` records become ``outputs.alarm`` and ``drift.report`` (labelled with the model), its requests become
``gateway.<decision>`` (``gateway.allow``, ``gateway.deny``, ``gateway.guard_reject``, ``gateway.rate_limited``
...) and its security events keep their action's name (``security.extraction``, ``security.model_integrity``).

A monitor in another process publishes its signals through the audit log (``signal_event``: an action
``monitor.signal`` record), where ``modelshield monitor alerts run`` reads them back with everything else.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from modelshield.audit import schema

if TYPE_CHECKING:
    from modelshield.monitor.drift import DriftReport
    from modelshield.monitor.outputs import Alarm
    from modelshield.monitor.training import TrainingAlarm

MONITOR_ACTOR = {"subject": "modelshield-monitor", "method": "system", "tenant": None}


@dataclass(frozen=True)
class Signal:
    """One observation for the rules: ``name`` (``outputs.alarm``, ``gateway.deny``, ...), a value, a time."""

    name: str
    at: float = field(default_factory=time.time)
    value: float = 1.0
    labels: Mapping[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "at": self.at, "value": self.value, "labels": dict(self.labels)}


_ALARM_LABELS = ("kind", "stream", "detector", "direction", "sample", "change_start")


def _alarm_signal(alarm: Mapping[str, Any], at: float, **labels: str) -> Signal:
    """An output alarm, from the ``Alarm`` itself or the dict the gateway's live monitor writes to the audit log."""
    at_ = alarm.get("at")
    return Signal(
        "outputs.alarm",
        float(at_) if isinstance(at_, int | float) else at,
        float(alarm.get("statistic", 1.0)),
        {**{k: str(alarm[k]) for k in _ALARM_LABELS if k in alarm}, **labels},
    )


def output_alarm_signal(alarm: Alarm) -> Signal:
    """An ``OutputMonitor`` alarm (poisoning: a class's share up; evasion: confidence down or entropy up)."""
    return _alarm_signal(asdict(alarm), alarm.at)


def training_alarm_signal(alarm: TrainingAlarm) -> Signal:
    """A ``DataAccessMonitor`` alarm (coverage, shuffle, batch-mix, file, ...)."""
    return Signal(
        "training.alarm",
        alarm.at,
        alarm.statistic,
        {"check": alarm.check, "epoch": str(alarm.epoch), "message": alarm.message},
    )


def drift_signal(report: DriftReport, at: float | None = None) -> Signal:
    """A drift check: the value is how many tests drifted (features, plus the joint MMD test)."""
    drifted = list(report.drifted) + (["*mmd"] if report.multivariate and report.multivariate.drift else [])
    return Signal(
        "drift.report",
        time.time() if at is None else at,
        float(len(drifted)),
        {
            "drift": "true" if report.drift else "false",
            "drifted": ",".join(drifted[:20]),
            "sketch": report.sketch_digest or "",
        },
    )


def signal_event(signal: Signal) -> dict[str, Any]:
    """An audit-log event carrying ``signal`` (how a monitor in another process hands it to ``alerts run``)."""
    return {
        "time": datetime.fromtimestamp(signal.at, UTC).isoformat(),
        "action": "monitor.signal",
        "actor": MONITOR_ACTOR,
        "decision": "flag" if signal.value else "allow",
        "signal": signal.to_dict(),
    }


def record_signal(event: Mapping[str, Any], recorded_at_us: int) -> Signal | None:
    """The signal an audit record stands for; None for the alert records themselves (no feedback loop)."""
    action = str(event.get("action", ""))
    at = recorded_at_us / 1e6
    if action.startswith("alert."):
        return None
    if action == "monitor.signal":
        raw = event.get("signal")
        if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
            return None
        labels = raw.get("labels")
        labels = labels if isinstance(labels, dict) else {}
        value = raw.get("value", 1.0)
        return Signal(
            raw["name"],
            float(raw.get("at", at)),
            float(value) if isinstance(value, int | float) else 1.0,
            {str(k): str(v) for k, v in labels.items()},
        )
    model = str(event.get("model") or "")
    if action == "monitor.output_alarm" and isinstance(event.get("alarm"), dict):  # the gateway's live monitor
        return _alarm_signal(event["alarm"], at, model=model)
    if action == "monitor.drift" and isinstance(event.get("drift"), dict):
        drift = event["drift"]
        drifted = drift.get("drifted", 1)
        return Signal(
            "drift.report",
            at,
            float(drifted) if isinstance(drifted, int | float) else 1.0,
            {"drift": "true", "model": model, "share": str(drift.get("share", ""))},
        )
    actor = event.get("actor")
    subject = actor.get("subject") if isinstance(actor, dict) else actor
    labels = {
        k: str(v)
        for k, v in (
            ("action", action),
            ("decision", event.get("decision")),
            ("model", event.get("model")),
            ("subject", subject),
            ("status_code", event.get("status_code")),
        )
        if v is not None
    }
    if "." in action:  # security.extraction, security.model_integrity, registry.promote, ...
        return Signal(action, at, 1.0, labels)
    return Signal(f"gateway.{event.get('decision') or 'unknown'}", at, 1.0, labels)


def read_records(
    engine: Engine, *, after_seq: int = 0, since: float | None = None
) -> Iterator[tuple[int, int, dict[str, Any]]]:
    """(seq, recorded_at µs, event) of audit records after ``after_seq`` (and recorded at or after ``since``)."""
    query = sa.select(schema.records.c.seq, schema.records.c.recorded_at, schema.records.c.event).where(
        schema.records.c.seq > after_seq
    )
    if since is not None:
        query = query.where(schema.records.c.recorded_at >= int(since * 1e6))
    with engine.connect() as conn:
        for row in conn.execution_options(yield_per=2000).execute(query.order_by(schema.records.c.seq)):
            yield row.seq, row.recorded_at, json.loads(row.event)


__all__ = [
    "Signal",
    "drift_signal",
    "output_alarm_signal",
    "read_records",
    "record_signal",
    "signal_event",
    "training_alarm_signal",
]
